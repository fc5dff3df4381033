package runbooks

import (
	"fmt"
	"os"
	"strings"

	"opspilot/config"
)

// Config is opspilot.yaml's `runbooks` section.
type Config struct {
	// AllowExec lets runbooks run exec steps (commands on the control
	// plane's machine, no shell). Off by default: an administrator's
	// choice.
	AllowExec bool       `yaml:"allow_exec"`
	Chat      ChatConfig `yaml:"chat"`
}

// ChatConfig is the Slack chat-bot. Credentials come from files, or from
// the conventional environment variables SLACK_BOT_TOKEN and
// SLACK_SIGNING_SECRET when the files are not set.
type ChatConfig struct {
	// BotTokenFile holds the bot token (xoxb-…) used to answer mentions.
	BotTokenFile string `yaml:"bot_token_file"`
	// SigningSecretFile holds the Slack app's signing secret; without it
	// (and without $SLACK_SIGNING_SECRET) /slack/commands and
	// /slack/events refuse every request.
	SigningSecretFile string `yaml:"signing_secret_file"`
	// AppTokenFile holds the app-level token (xapp-…, scope
	// connections:write) for Socket Mode: with it and a bot token, the
	// bot connects out to Slack and needs no public endpoint.
	AppTokenFile string `yaml:"app_token_file"`
	// ApprovalChannel is where runbook approval requests are posted
	// (needs the bot token); empty: approve steps are denied.
	ApprovalChannel string `yaml:"approval_channel"`
	// Users map Slack user ids to roles; a user not listed may only run
	// commands that change nothing.
	RBAC `yaml:",inline"`
}

// Validate reports problems with YAML field paths.
func (c Config) Validate() []config.Problem {
	return config.Prefix("chat", c.Chat.RBAC.Validate())
}

// AppToken reads the Socket Mode app-level token (the file, else
// $SLACK_APP_TOKEN); empty when neither is set.
func (c ChatConfig) AppToken() (string, error) {
	if c.AppTokenFile == "" {
		return strings.TrimSpace(os.Getenv("SLACK_APP_TOKEN")), nil
	}
	b, err := os.ReadFile(c.AppTokenFile)
	if err != nil {
		return "", fmt.Errorf("runbooks.chat.app_token_file: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// Credentials reads the bot token and signing secret (files first, then
// the environment); either may be empty.
func (c ChatConfig) Credentials() (token, secret string, err error) {
	read := func(file, env, field string) (string, error) {
		if file == "" {
			return strings.TrimSpace(os.Getenv(env)), nil
		}
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("runbooks.chat.%s: %w", field, err)
		}
		return strings.TrimSpace(string(b)), nil
	}
	if token, err = read(c.BotTokenFile, "SLACK_BOT_TOKEN", "bot_token_file"); err != nil {
		return "", "", err
	}
	secret, err = read(c.SigningSecretFile, "SLACK_SIGNING_SECRET", "signing_secret_file")
	return token, secret, err
}

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

// ChatCredentials are the chat-bot's Slack secrets; any may be empty.
type ChatCredentials struct {
	// BotToken (xoxb-…) posts replies, approvals and thread lines.
	BotToken string
	// SigningSecret verifies Slack's HTTP requests.
	SigningSecret string
	// AppToken (xapp-…) opens the Socket Mode connection.
	AppToken string
}

// Credentials reads the bot token, signing secret and app-level token:
// each from its file, or else from $SLACK_BOT_TOKEN, $SLACK_SIGNING_SECRET
// and $SLACK_APP_TOKEN.
func (c ChatConfig) Credentials() (ChatCredentials, error) {
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
	var cr ChatCredentials
	var err error
	if cr.BotToken, err = read(c.BotTokenFile, "SLACK_BOT_TOKEN", "bot_token_file"); err != nil {
		return cr, err
	}
	if cr.SigningSecret, err = read(c.SigningSecretFile, "SLACK_SIGNING_SECRET", "signing_secret_file"); err != nil {
		return cr, err
	}
	cr.AppToken, err = read(c.AppTokenFile, "SLACK_APP_TOKEN", "app_token_file")
	return cr, err
}

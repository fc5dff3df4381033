package report

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sync"

	"github.com/slack-go/slack"
)

// SlackPoster uploads a report into a channel as a file (Slack's upload
// flow: files.getUploadURLExternal, the upload, files.completeUploadExternal)
// with its text summary as the initial comment. A report without a
// channel goes to Fallback.
type SlackPoster struct {
	API      *slack.Client
	Fallback Poster
}

// NewSlackPoster makes a poster for a bot token; apiURL overrides Slack's
// API URL when not empty (it must end with a slash).
func NewSlackPoster(token, apiURL string, fallback Poster) *SlackPoster {
	var opts []slack.Option
	if apiURL != "" {
		opts = append(opts, slack.OptionAPIURL(apiURL))
	}
	return &SlackPoster{API: slack.New(token, opts...), Fallback: fallback}
}

// Post implements Poster.
func (p *SlackPoster) Post(ctx context.Context, b Built, path string) error {
	if b.Channel == "" {
		if p.Fallback != nil {
			return p.Fallback.Post(ctx, b, path)
		}
		return nil
	}
	if len(b.Body) == 0 {
		return fmt.Errorf("slack: %s is empty", b.Name)
	}
	comment := b.Summary
	if len(comment) > 3900 {
		comment = comment[:3900] + "…"
	}
	_, err := p.API.UploadFileContext(ctx, slack.UploadFileParameters{
		Reader:         bytes.NewReader(b.Body),
		FileSize:       len(b.Body),
		Filename:       b.Name,
		Title:          b.Name,
		InitialComment: comment,
		Channel:        b.Channel,
	})
	if err != nil {
		return fmt.Errorf("slack: upload %s to %s: %w", b.Name, b.Channel, err)
	}
	return nil
}

// ConsolePoster prints the report's summary and where it is kept.
type ConsolePoster struct {
	mu sync.Mutex
	W  io.Writer
}

// Post implements Poster.
func (p *ConsolePoster) Post(_ context.Context, b Built, path string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, err := fmt.Fprintf(p.W, "[REPORT] %s report kept at %s\n%s", b.Kind, path, b.Summary)
	return err
}

package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"opspilot/orchestrator/model"
)

// RegisterInterval is how often Register announces a gateway. The server
// forgets a gateway 15s after its last announcement, so two announcements
// may fail in a row before `opspilot loadgen` stops finding it.
const RegisterInterval = 5 * time.Second

// Register announces gw to the server at serverURL (POST /api/v1/gateways)
// now and every RegisterInterval until ctx is done, then returns nil.
// Failures are logged (via slog.Default) and retried at the next tick. It
// returns an error at once only for arguments that can never work. client
// may be nil.
func Register(ctx context.Context, serverURL, token string, gw model.Gateway, client *http.Client) error {
	switch {
	case checkServerURL(serverURL) != nil:
		return fmt.Errorf("register gateway: %w", checkServerURL(serverURL))
	case gw.Name == "" || gw.URL == "":
		return errors.New("register gateway: name and URL are required (the URL is what clients use to reach this gateway)")
	}
	body, err := json.Marshal(gw)
	if err != nil {
		return fmt.Errorf("register gateway: %w", err)
	}
	if client == nil {
		client = &http.Client{}
	}
	endpoint := strings.TrimRight(serverURL, "/") + "/api/v1/gateways"
	log := slog.Default().With("component", "gateway-register", "server", serverURL, "gateway", gw.Name)

	tick := time.NewTicker(RegisterInterval)
	defer tick.Stop()
	failing := false
	for {
		err := registerOnce(ctx, endpoint, token, body, client, serverURL)
		switch {
		case err != nil && ctx.Err() == nil && !failing:
			failing = true
			log.Warn("cannot register the gateway; retrying every "+RegisterInterval.String(), "err", err)
		case err != nil && ctx.Err() == nil:
			log.Debug("gateway registration failed", "err", err)
		case err == nil && failing:
			failing = false
			log.Info("gateway registered again")
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

func registerOnce(ctx context.Context, endpoint, token string, body []byte, client *http.Client, server string) error {
	// A registration older than one interval is worthless: the next one
	// is due.
	ctx, cancel := context.WithTimeout(ctx, RegisterInterval)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	setAuth(req, token)
	res, err := client.Do(req)
	if err != nil {
		return err
	}
	defer drainClose(res.Body)
	return checkStatus(res, server)
}

package loadgen

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"opspilot/orchestrator/model"
)

// Discover asks the server at serverURL for the registered gateways
// (GET /api/v1/gateways) and returns the first one's URL. client may be
// nil.
func Discover(ctx context.Context, serverURL, token string, client *http.Client) (string, error) {
	if u, err := url.Parse(serverURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("discover gateway: server URL %q must be absolute http(s), e.g. http://127.0.0.1:7070", serverURL)
	}
	if client == nil {
		client = http.DefaultClient
	}
	endpoint := strings.TrimRight(serverURL, "/") + "/api/v1/gateways"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, endpoint, nil)
	if err != nil {
		return "", fmt.Errorf("discover gateway: %w", err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := client.Do(req)
	if err != nil {
		return "", fmt.Errorf("discover gateway: is the server running at %s? %w", serverURL, err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(res.Body, 512))
		if res.StatusCode == http.StatusUnauthorized || res.StatusCode == http.StatusForbidden {
			return "", fmt.Errorf("discover gateway: %s rejected the token (HTTP %d: %s); pass the server's API token", serverURL, res.StatusCode, strings.TrimSpace(string(msg)))
		}
		return "", fmt.Errorf("discover gateway: %s answered HTTP %d: %s", endpoint, res.StatusCode, strings.TrimSpace(string(msg)))
	}
	var gws []model.Gateway
	if err := json.NewDecoder(io.LimitReader(res.Body, 8<<20)).Decode(&gws); err != nil {
		return "", fmt.Errorf("discover gateway: decode %s: %w", endpoint, err)
	}
	for _, gw := range gws {
		if gw.URL != "" {
			return gw.URL, nil
		}
	}
	return "", fmt.Errorf("no gateway registered with %s; start one with `opspilot gateway --server %s`", serverURL, serverURL)
}

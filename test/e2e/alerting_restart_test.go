package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"opspilot/test/testbin"
)

// TestUpAlertingRestartDoesNotNotifyAgain: an alert notified through an
// Alertmanager webhook receiver (Alertmanager's own JSON) is not notified
// again after `opspilot up` restarts while it keeps firing; its
// resolution after the restart is notified once.
func TestUpAlertingRestartDoesNotNotifyAgain(t *testing.T) {
	type call struct {
		Status string `json:"status"`
		Alerts []struct {
			Status string            `json:"status"`
			Labels map[string]string `json:"labels"`
		} `json:"alerts"`
	}
	var (
		mu    sync.Mutex
		calls []call
	)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var c call
		if err := json.NewDecoder(r.Body).Decode(&c); err != nil {
			t.Errorf("webhook body: %v", err)
		}
		mu.Lock()
		calls = append(calls, c)
		mu.Unlock()
	}))
	defer hook.Close()
	got := func() []call {
		mu.Lock()
		defer mu.Unlock()
		return append([]call(nil), calls...)
	}

	dir := t.TempDir()
	rules := writeFile(t, dir, "queue.rules.yaml", `groups:
  - name: orders
    rules:
      - alert: OrdersQueueDeep
        expr: max by (service) (e2e_queue_depth{service="orders"}) > 100
        labels: {severity: warning}
        annotations: {summary: "orders queue at {{ $value }}"}
`)
	am := writeFile(t, dir, "alertmanager.yml", `route:
  receiver: hook
  group_by: [alertname, service]
  group_wait: 500ms
  group_interval: 2s
  repeat_interval: 1h
receivers:
  - name: hook
    webhook_configs:
      - url: `+hook.URL+`
`)
	cfg := writeFile(t, dir, "opspilot.yaml", fmt.Sprintf(`agent: {logs: {enabled: false}}
analyzer: {enabled: false}
alerting:
  rules: {files: [%s]}
  pipeline: {alertmanager_config_file: %s}
`, rules, am))
	addr := testbin.FreeAddr(t)
	data := filepath.Join(dir, "data")
	up := func() *server {
		s := launch(t, addr, data, "up", "--config", cfg, "--data-dir", data, "--http-addr", addr, "--logstore-addr", "127.0.0.1:0")
		s.waitReady(t, startTimeout)
		return s
	}
	s := up()

	// The queue depth, written every second (failures while the server
	// restarts are expected).
	var depth atomic.Int64
	depth.Store(500)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			body := fmt.Sprintf("e2e_queue_depth{service=\"orders\"} %d %d\n", depth.Load(), time.Now().UnixMilli())
			if resp, err := http.Post("http://"+addr+"/prometheus/api/v1/import/prometheus", "text/plain", strings.NewReader(body)); err == nil {
				resp.Body.Close()
			}
			select {
			case <-stop:
				return
			case <-time.After(time.Second):
			}
		}
	}()
	defer func() { close(stop); <-done }()

	waitUntil(t, 20*time.Second, "the firing webhook call", func() bool { return len(got()) == 1 })
	if c := got()[0]; c.Status != "firing" || len(c.Alerts) != 1 || c.Alerts[0].Labels["alertname"] != "OrdersQueueDeep" {
		t.Fatalf("first webhook call %+v", c)
	}
	s.stopClean(t, 30*time.Second)
	s = up()
	// The rules fire the alert again at once; the notification log says
	// it was sent.
	time.Sleep(8 * time.Second)
	if n := len(got()); n != 1 {
		t.Fatalf("after the restart the webhook was called again: %+v", got())
	}
	if r := opspilot(t, "alerts", "--server", s.base); r.code != 0 || !strings.Contains(r.stdout, "OrdersQueueDeep") || !strings.Contains(r.stdout, "firing") {
		t.Errorf("alerts after the restart:\n%s", r)
	}
	depth.Store(0)
	waitUntil(t, 20*time.Second, "the resolved webhook call", func() bool { return len(got()) == 2 })
	if c := got()[1]; c.Status != "resolved" || c.Alerts[0].Status != "resolved" {
		t.Errorf("second webhook call %+v, want the resolution", c)
	}
	time.Sleep(3 * time.Second)
	if n := len(got()); n != 2 {
		t.Errorf("%d webhook calls, want 2: %+v", n, got())
	}
}

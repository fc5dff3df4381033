package runtime

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"opspilot/orchestrator/model"
)

func TestProbe(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ok":
		case "/redirect":
			http.Redirect(w, r, "/fail", http.StatusFound)
		case "/slow":
			time.Sleep(300 * time.Millisecond)
		default:
			http.Error(w, "no", http.StatusInternalServerError)
		}
	}))
	defer srv.Close()
	httpPort := srv.Listener.Addr().(*net.TCPAddr).Port

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	tcpPort := l.Addr().(*net.TCPAddr).Port
	closed, _ := net.Listen("tcp", "127.0.0.1:0")
	closedPort := closed.Addr().(*net.TCPAddr).Port
	closed.Close()

	dir := t.TempDir()
	if err := os.WriteFile(dir+"/marker", nil, 0o644); err != nil {
		t.Fatal(err)
	}
	target := ProbeTarget{
		Host: "127.0.0.1",
		// Declared 8080 (named) is the HTTP server, 9000 (unnamed) the TCP
		// listener, 9001 nothing.
		Declared:  []model.Port{{Name: "http", Port: 8080}, {Port: 9000}, {Port: 9001}},
		HostPorts: map[string]int{"http": httpPort, "9000": tcpPort, "9001": closedPort},
		Dir:       dir,
		Env:       []string{"PATH=" + os.Getenv("PATH"), "WANT=yes"},
	}
	for _, tc := range []struct {
		name    string
		probe   model.Probe
		wantErr string
	}{
		{"http 200", model.Probe{HTTP: &model.HTTPProbe{Path: "/ok", Port: 8080}}, ""},
		{"http 3xx is ok and not followed", model.Probe{HTTP: &model.HTTPProbe{Path: "/redirect", Port: 8080}}, ""},
		{"http 500", model.Probe{HTTP: &model.HTTPProbe{Path: "/fail", Port: 8080}}, "500"},
		{"http timeout", model.Probe{HTTP: &model.HTTPProbe{Path: "/slow", Port: 8080}, Timeout: 50 * time.Millisecond, Period: time.Second}, "deadline"},
		{"port 0 is the first declared", model.Probe{HTTP: &model.HTTPProbe{Path: "/ok"}}, ""},
		{"undeclared port", model.Probe{HTTP: &model.HTTPProbe{Path: "/ok", Port: 1234}}, "not a declared"},
		{"tcp open", model.Probe{TCP: &model.TCPProbe{Port: 9000}}, ""},
		{"tcp closed", model.Probe{TCP: &model.TCPProbe{Port: 9001}}, "refused"},
		{"exec ok in dir with env", model.Probe{Exec: &model.ExecProbe{Command: []string{"sh", "-c", `test -f marker && test "$WANT" = yes`}}}, ""},
		{"exec fails with output", model.Probe{Exec: &model.ExecProbe{Command: []string{"sh", "-c", "echo broken >&2; exit 3"}}}, "exit status 3: broken"},
		{"exec missing", model.Probe{Exec: &model.ExecProbe{Command: []string{"no-such-command-xyz"}}}, "not found"},
		{"exec timeout", model.Probe{Exec: &model.ExecProbe{Command: []string{"sleep", "5"}}, Timeout: 50 * time.Millisecond, Period: time.Second}, "killed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			err := Probe(context.Background(), tc.probe, target)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("probe took %s", d)
			}
		})
	}

	// Exec probes of containers go through the handle.
	ex := execFunc(func(ctx context.Context, argv []string) error {
		if argv[0] != "check" {
			t.Errorf("argv %q", argv)
		}
		return nil
	})
	target.Exec = ex
	if err := Probe(context.Background(), model.Probe{Exec: &model.ExecProbe{Command: []string{"check"}}}, target); err != nil {
		t.Fatal(err)
	}
}

type execFunc func(ctx context.Context, argv []string) error

func (f execFunc) Exec(ctx context.Context, argv []string) error { return f(ctx, argv) }

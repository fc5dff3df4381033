package main

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestElectLeader(t *testing.T) {
	three := "a=http://127.0.0.1:1,b=http://127.0.0.1:2,c=http://127.0.0.1:3"
	for _, tc := range []struct {
		name      string
		mode, ext string
		initial   string
		want      bool
	}{
		{"default single member", "auto", "embedded", "", false},
		{"embedded cluster", "auto", "embedded", three, true},
		{"external etcd", "auto", "external", "", true},
		{"forced off", "off", "embedded", three, false},
		{"forced on", "on", "embedded", "", true},
	} {
		cfg := defaultFileConfig()
		cfg.Orchestrator.Leader.Election = tc.mode
		cfg.Orchestrator.Store.Mode = tc.ext
		cfg.Orchestrator.Store.InitialCluster = tc.initial
		if got := cfg.electLeader(); got != tc.want {
			t.Errorf("%s: electLeader = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// runAll stops every leader loop when one fails, and returns that error;
// loops stopped by the context return no error.
func TestRunAll(t *testing.T) {
	boom := errors.New("boom")
	stopped := make(chan struct{}, 1)
	err := runAll(context.Background(), []func(context.Context) error{
		func(ctx context.Context) error { <-ctx.Done(); stopped <- struct{}{}; return nil },
		func(context.Context) error { time.Sleep(10 * time.Millisecond); return boom },
	})
	if !errors.Is(err, boom) {
		t.Errorf("runAll = %v, want boom", err)
	}
	select {
	case <-stopped:
	default:
		t.Error("the other loop was not stopped")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := runAll(ctx, []func(context.Context) error{func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }}); err != nil {
		t.Errorf("runAll after cancel = %v, want nil", err)
	}
}

package store

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"reflect"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"opspilot/orchestrator/model"
)

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func openTestStore(t *testing.T, dir string) *Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := Open(ctx, Config{Embedded: true, DataDir: dir}, testLogger(t))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Logf("embedded etcd ready in %s", s.StartDuration)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func service(name string, replicas int) model.Service {
	return model.Service{
		Name:     name,
		Tenant:   "team-a",
		Runtime:  model.RuntimeProcess,
		Command:  []string{"/bin/app", "--port=8080"},
		Env:      map[string]string{"MODE": "prod"},
		Requests: model.Resources{MilliCPU: 500, MemoryBytes: 256 << 20},
		Replicas: replicas,
		Ports:    []model.Port{{Name: "http", Port: 8080}},
	}
}

func TestRoundTrip(t *testing.T) {
	s := openTestStore(t, t.TempDir())
	ctx := context.Background()

	v1, err := Create(ctx, s, KindService, "web", service("web", 2))
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	if _, err := Create(ctx, s, KindService, "api", service("api", 1)); err != nil {
		t.Fatalf("Create api: %v", err)
	}
	if _, err := Create(ctx, s, KindService, "web", service("web", 9)); !errors.Is(err, ErrExists) {
		t.Fatalf("second Create: got %v, want ErrExists", err)
	}

	got, err := Get[model.Service](ctx, s, KindService, "web")
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if !reflect.DeepEqual(got.Value, service("web", 2)) || got.Version != v1 {
		t.Fatalf("Get = %+v v%d, want %+v v%d", got.Value, got.Version, service("web", 2), v1)
	}
	if _, err := Get[model.Service](ctx, s, KindService, "nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get missing: got %v, want ErrNotFound", err)
	}

	// A kind whose name is a prefix of another must not leak into it.
	if _, err := Create(ctx, s, KindService+"x", "other", service("other", 1)); err != nil {
		t.Fatal(err)
	}
	list, rev, err := List[model.Service](ctx, s, KindService)
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if len(list) != 2 || list[0].Value.Name != "api" || list[1].Value.Name != "web" || list[1].Version != v1 {
		t.Fatalf("List = %+v", list)
	}
	if rev < v1 {
		t.Fatalf("List revision %d < create version %d", rev, v1)
	}

	v2, err := Update(ctx, s, KindService, "web", service("web", 3), v1)
	if err != nil {
		t.Fatalf("Update: %v", err)
	}
	if v2 <= v1 {
		t.Fatalf("Update version %d not after %d", v2, v1)
	}
	// Stale version: conflict carrying the current version; value unchanged.
	_, err = Update(ctx, s, KindService, "web", service("web", 7), v1)
	var ce *ConflictError
	if !errors.Is(err, ErrConflict) || !errors.As(err, &ce) || ce.Current != v2 || ce.Expected != v1 {
		t.Fatalf("stale Update: got %v, want ConflictError current %d", err, v2)
	}
	if !strings.Contains(err.Error(), fmt.Sprint(v2)) {
		t.Errorf("conflict error %q does not name the current version %d", err, v2)
	}
	got, _ = Get[model.Service](ctx, s, KindService, "web")
	if got.Value.Replicas != 3 || got.Version != v2 {
		t.Fatalf("after stale Update: %+v v%d, want replicas 3 v%d", got.Value, got.Version, v2)
	}
	if _, err := Update(ctx, s, KindService, "ghost", service("ghost", 1), v2); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Update missing: got %v, want ErrNotFound", err)
	}

	// Delete: stale version conflicts, right version deletes, then gone.
	if err := Delete(ctx, s, KindService, "web", v1); !errors.Is(err, ErrConflict) {
		t.Fatalf("stale Delete: got %v, want ErrConflict", err)
	}
	if err := Delete(ctx, s, KindService, "web", v2); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := Get[model.Service](ctx, s, KindService, "web"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get after Delete: got %v", err)
	}
	if err := Delete(ctx, s, KindService, "web", v2); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Delete deleted with version: got %v, want ErrNotFound", err)
	}
	if err := Delete(ctx, s, KindService, "api", 0); err != nil {
		t.Fatalf("unconditional Delete: %v", err)
	}
	if err := Delete(ctx, s, KindService, "api", 0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unconditional Delete twice: got %v, want ErrNotFound", err)
	}
	list, _, _ = List[model.Service](ctx, s, KindService)
	if len(list) != 0 {
		t.Fatalf("List after deletes = %+v", list)
	}
}

func TestBadNames(t *testing.T) {
	s := openTestStore(t, t.TempDir())
	ctx := context.Background()
	for _, tc := range []struct{ kind, name string }{{"", "a"}, {"services", ""}, {"services", "a/b"}, {"a/b", "c"}} {
		if _, err := Create(ctx, s, tc.kind, tc.name, 1); err == nil {
			t.Errorf("Create(%q, %q) succeeded", tc.kind, tc.name)
		}
	}
	if _, err := Update(ctx, s, "services", "x", 1, 0); err == nil {
		t.Error("Update with version 0 succeeded")
	}
}

func TestConcurrentUpdateOneWins(t *testing.T) {
	s := openTestStore(t, t.TempDir())
	ctx := context.Background()
	for round := range 20 {
		name := fmt.Sprintf("svc-%d", round)
		v, err := Create(ctx, s, KindService, name, service(name, 1))
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for i := range 2 {
			wg.Go(func() {
				_, errs[i] = Update(ctx, s, KindService, name, service(name, 10+i), v)
			})
		}
		wg.Wait()
		won := -1
		for i, err := range errs {
			switch {
			case err == nil:
				if won >= 0 {
					t.Fatalf("round %d: both updates succeeded", round)
				}
				won = i
			case !errors.Is(err, ErrConflict):
				t.Fatalf("round %d: loser got %v, want ErrConflict", round, err)
			}
		}
		if won < 0 {
			t.Fatalf("round %d: no update succeeded: %v", round, errs)
		}
		got, _ := Get[model.Service](ctx, s, KindService, name)
		if got.Value.Replicas != 10+won {
			t.Fatalf("round %d: stored replicas %d, winner wrote %d", round, got.Value.Replicas, 10+won)
		}
	}
}

func TestWatchFromListRevision(t *testing.T) {
	s := openTestStore(t, t.TempDir())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	if _, err := Create(ctx, s, KindService, "before", service("before", 1)); err != nil {
		t.Fatal(err)
	}
	_, rev, err := List[model.Service](ctx, s, KindService)
	if err != nil {
		t.Fatal(err)
	}
	// Changes made between List and Watch must still be seen.
	vPut, err := Create(ctx, s, KindService, "web", service("web", 1))
	if err != nil {
		t.Fatal(err)
	}
	vUpd, err := Update(ctx, s, KindService, "web", service("web", 2), vPut)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Create(ctx, s, KindNode, "n1", model.Node{Name: "n1"}); err != nil { // other kind: not seen
		t.Fatal(err)
	}
	events := Watch(ctx, s, KindService, rev)
	if err := Delete(ctx, s, KindService, "web", vUpd); err != nil {
		t.Fatal(err)
	}

	want := []struct {
		typ      EventType
		replicas int
		version  int64
	}{{EventPut, 1, vPut}, {EventPut, 2, vUpd}, {EventDelete, 0, 0}}
	var last int64
	for i, w := range want {
		var ev Event
		select {
		case ev = <-events:
		case <-ctx.Done():
			t.Fatalf("event %d: timed out", i)
		}
		if ev.Type != w.typ || ev.Name != "web" || ev.Err != nil {
			t.Fatalf("event %d = %+v, want %s web", i, ev, w.typ)
		}
		if ev.Version <= last {
			t.Fatalf("event %d version %d not after %d", i, ev.Version, last)
		}
		last = ev.Version
		if w.typ == EventPut {
			var svc model.Service
			if err := json.Unmarshal(ev.Value, &svc); err != nil || svc.Replicas != w.replicas || ev.Version != w.version {
				t.Fatalf("event %d: %+v v%d (%v), want replicas %d v%d", i, svc, ev.Version, err, w.replicas, w.version)
			}
		}
	}
	cancel()
	for range events { // closes once ctx ends
	}
}

func TestRestartKeepsObjectsAndVersions(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	s := openTestStore(t, dir)
	versions := map[string]int64{}
	for i := range 5 {
		name := fmt.Sprintf("svc-%d", i)
		v, err := Create(ctx, s, KindService, name, service(name, i))
		if err != nil {
			t.Fatal(err)
		}
		versions[name] = v
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Close(); err != nil { // idempotent, no panic
		t.Fatalf("second Close: %v", err)
	}

	s2 := openTestStore(t, dir)
	list, _, err := List[model.Service](ctx, s2, KindService)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != len(versions) {
		t.Fatalf("after restart: %d objects, want %d", len(list), len(versions))
	}
	for _, o := range list {
		if versions[o.Value.Name] != o.Version || !reflect.DeepEqual(o.Value, service(o.Value.Name, o.Value.Replicas)) {
			t.Errorf("after restart: %+v v%d, want version %d", o.Value, o.Version, versions[o.Value.Name])
		}
	}
	// The restored version still works for optimistic concurrency.
	if _, err := Update(ctx, s2, KindService, "svc-0", service("svc-0", 5), versions["svc-0"]); err != nil {
		t.Fatalf("Update after restart: %v", err)
	}
}

func TestSecondOpenSameDirFails(t *testing.T) {
	dir := t.TempDir()
	openTestStore(t, dir)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	s2, err := Open(ctx, Config{Embedded: true, DataDir: dir}, testLogger(t))
	if err == nil {
		_ = s2.Close()
		t.Fatal("second Open on the same data dir succeeded")
	}
	if !strings.Contains(err.Error(), "in use by another opspilot (pid ") || !strings.Contains(err.Error(), dir) {
		t.Fatalf("second Open error not clear: %v", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("second Open took %s to fail", d)
	}
}

// TestBeforeStartRunsUnderTheLock: BeforeStart does not run for a second
// process on a locked data directory; its error stops Open and releases
// the lock.
func TestBeforeStartRunsUnderTheLock(t *testing.T) {
	dir := t.TempDir()
	first := openTestStore(t, dir)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ran := false
	cfg := Config{Embedded: true, DataDir: dir, BeforeStart: func() error { ran = true; return nil }}
	if s, err := Open(ctx, cfg, testLogger(t)); err == nil {
		_ = s.Close()
		t.Fatal("second Open on the same data dir succeeded")
	}
	if ran {
		t.Error("BeforeStart ran although the data directory is locked by another store")
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}

	cfg.BeforeStart = func() error { return errors.New("no certificate") }
	if s, err := Open(ctx, cfg, testLogger(t)); err == nil || err.Error() != "no certificate" {
		if s != nil {
			_ = s.Close()
		}
		t.Fatalf("Open with a failing BeforeStart = %v, want its error", err)
	}
	cfg.BeforeStart = func() error { ran = true; return nil }
	s, err := Open(ctx, cfg, testLogger(t))
	if err != nil {
		t.Fatalf("Open after a failed BeforeStart: %v (the lock must be released)", err)
	}
	defer s.Close()
	if !ran {
		t.Error("BeforeStart did not run")
	}
}

func TestOpenConfigErrors(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{Embedded: true}, "set DataDir"},
		{Config{}, "no etcd endpoints"},
		{Config{Embedded: true, DataDir: t.TempDir(), ClientURL: "http://127.0.0.1"}, "explicit port"},
	} {
		if _, err := Open(ctx, tc.cfg, testLogger(t)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Open(%+v) = %v, want error containing %q", tc.cfg, err, tc.want)
		}
	}
}

func TestOpenPortBusy(t *testing.T) {
	s := openTestStore(t, t.TempDir())
	busy := "http://" + s.etcd.Clients[0].Addr().String()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	dir := t.TempDir()
	_, err := Open(ctx, Config{Embedded: true, DataDir: dir, ClientURL: busy}, testLogger(t))
	if err == nil || !strings.Contains(err.Error(), "port is in use") {
		t.Fatalf("Open on a busy port = %v, want a 'port is in use' error", err)
	}
	// The failed Open released the data dir.
	openTestStore(t, dir)
}

func TestExternalEndpoints(t *testing.T) {
	s := openTestStore(t, t.TempDir())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ext, err := Open(ctx, Config{Endpoints: []string{s.etcd.Clients[0].Addr().String()}, Prefix: "/other"}, testLogger(t))
	if err != nil {
		t.Fatalf("Open external: %v", err)
	}
	defer ext.Close()
	if _, err := Create(ctx, ext, KindTenant, "t1", model.Tenant{Name: "t1", Weight: 2}); err != nil {
		t.Fatal(err)
	}
	got, err := Get[model.Tenant](ctx, ext, KindTenant, "t1")
	if err != nil || got.Value.Weight != 2 {
		t.Fatalf("Get via external = %+v, %v", got, err)
	}
	// Different prefix: invisible to the default-prefix store.
	if _, err := Get[model.Tenant](ctx, s, KindTenant, "t1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("prefix isolation: got %v", err)
	}
}

const childDirEnv = "OPSPILOT_STORE_CHILD_DIR"

// TestChildWriter is the child half of TestKill9Durability: it creates
// objects forever, printing each name after Create returned.
func TestChildWriter(t *testing.T) {
	dir := os.Getenv(childDirEnv)
	if dir == "" {
		t.Skip("child process of TestKill9Durability only")
	}
	ctx := context.Background()
	s, err := Open(ctx, Config{Embedded: true, DataDir: dir}, slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		fmt.Fprintln(os.Stderr, "child open:", err)
		os.Exit(2)
	}
	fmt.Printf("ready %d\n", s.StartDuration.Microseconds())
	for i := 0; ; i++ {
		name := fmt.Sprintf("svc-%d", i)
		if _, err := Create(ctx, s, KindService, name, service(name, i)); err != nil {
			fmt.Fprintln(os.Stderr, "child create:", err)
			os.Exit(3)
		}
		fmt.Printf("created %s\n", name)
	}
}

func TestKill9Durability(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestChildWriter$", "-test.count=1")
	cmd.Env = append(os.Environ(), childDirEnv+"="+dir)
	cmd.Stderr = testWriter{t}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	defer func() {
		if !killed {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	}()

	const need = 200
	confirmed := map[string]bool{}
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	deadline := time.After(20 * time.Second)
	var firstCreate time.Time
	for len(confirmed) < need {
		select {
		case line, ok := <-lines:
			if !ok {
				t.Fatalf("child exited after %d creates", len(confirmed))
			}
			if name, ok := strings.CutPrefix(line, "created "); ok {
				if firstCreate.IsZero() {
					firstCreate = time.Now()
				}
				confirmed[name] = true
			}
		case <-deadline:
			t.Fatalf("only %d creates confirmed in 20 s", len(confirmed))
		}
	}
	elapsed := time.Since(firstCreate)
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed = true
	// Count what the child confirmed after our count too: those must
	// survive as well.
	go func() { _, _ = io.Copy(io.Discard, stdout) }()
	for line := range lines {
		if name, ok := strings.CutPrefix(line, "created "); ok {
			confirmed[name] = true
		}
	}
	_ = cmd.Wait()
	t.Logf("child confirmed %d creates, ~%s per create (fsync, child under the same build flags)", len(confirmed), elapsed/time.Duration(need-1))

	s := openTestStore(t, dir)
	list, _, err := List[model.Service](context.Background(), s, KindService)
	if err != nil {
		t.Fatal(err)
	}
	stored := map[string]bool{}
	for _, o := range list {
		if stored[o.Value.Name] {
			t.Fatalf("%s stored twice", o.Value.Name)
		}
		stored[o.Value.Name] = true
	}
	if len(stored) < len(confirmed) {
		t.Fatalf("%d objects stored, %d confirmed", len(stored), len(confirmed))
	}
	for name := range confirmed {
		if !stored[name] {
			t.Errorf("confirmed %s lost after kill -9", name)
		}
	}
}

func BenchmarkCreate(b *testing.B) {
	dir := b.TempDir()
	s, err := Open(context.Background(), Config{Embedded: true, DataDir: dir}, testLogger(b))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	i := 0
	for b.Loop() {
		name := fmt.Sprintf("svc-%d", i)
		i++
		if _, err := Create(ctx, s, KindService, name, service(name, 1)); err != nil {
			b.Fatal(err)
		}
	}
}

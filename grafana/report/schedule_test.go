package report

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/slack-go/slack/slacktest"

	"opspilot/config"
)

func TestScheduleNext(t *testing.T) {
	mon := time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC) // a Monday
	for _, c := range []struct {
		s    Schedule
		now  time.Time
		want time.Time
	}{
		{Schedule{Every: "daily", At: "07:00"}, mon.Add(6 * time.Hour), mon.Add(7 * time.Hour)},
		{Schedule{Every: "daily", At: "07:00"}, mon.Add(7 * time.Hour), mon.Add(31 * time.Hour)},
		{Schedule{Every: "weekly", Weekday: "monday", At: "08:00"}, mon.Add(9 * time.Hour), mon.AddDate(0, 0, 7).Add(8 * time.Hour)},
		{Schedule{Every: "weekly", Weekday: "Fri", At: "23:59"}, mon, mon.AddDate(0, 0, 4).Add(23*time.Hour + 59*time.Minute)},
		{Schedule{Every: "off", At: "07:00"}, mon, time.Time{}},
	} {
		if got := c.s.Next(c.now); !got.Equal(c.want) {
			t.Errorf("%+v at %s: next %s, want %s", c.s, c.now, got, c.want)
		}
	}
}

func TestConfigValidateNamesTheField(t *testing.T) {
	if ps := DefaultConfig().Validate(); len(ps) > 0 {
		t.Fatalf("defaults: %v", ps)
	}
	c := DefaultConfig()
	c.Capacity.Every, c.Inspection.At, c.Capacity.Format, c.Inspection.DiskThreshold = "hourly", "7am", "docx", 1.2
	c.Capacity.Weekday = "someday"
	got := fmt.Sprint(c.Validate())
	for _, want := range []string{"capacity.schedule", "inspection.time", "capacity.format", "inspection.disk_threshold"} {
		if !strings.Contains(got, want) {
			t.Errorf("problems %s lack %s", got, want)
		}
	}
	c = DefaultConfig()
	c.Capacity.Weekday = "someday"
	if ps := c.Validate(); len(ps) != 1 || ps[0].Field != "capacity.weekday" {
		t.Errorf("a bad weekday: %v", ps)
	}
}

// The schedule loop, on synctest's clock: the inspection every day at
// 07:00, the capacity report on Mondays at 08:00; each kept (the oldest
// removed beyond Keep) and posted; a failed build is logged and the next
// run still comes.
func TestSchedulerRunsJobsOnTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		start := time.Now().UTC() // synctest: 2000-01-01 00:00 UTC, a Saturday
		var mu sync.Mutex
		var ran []string
		failNext := true
		build := func(kind string) func(context.Context, time.Time) (Built, error) {
			return func(_ context.Context, now time.Time) (Built, error) {
				mu.Lock()
				defer mu.Unlock()
				ran = append(ran, kind+" "+now.Format("Mon 01-02 15:04"))
				if kind == "inspection" && failNext {
					failNext = false
					return Built{}, errors.New("tsdb unreachable")
				}
				return Built{Kind: kind, Name: FileName(kind, now, "html"), Body: []byte("<html>" + kind + "</html>"), Summary: kind + " summary\n"}, nil
			}
		}
		var console bytes.Buffer
		var logs bytes.Buffer
		s := &Scheduler{Dir: dir, Keep: 2, Timeout: time.Minute, Poster: &ConsolePoster{W: &console},
			Log: slog.New(slog.NewTextHandler(&logs, nil)),
			Jobs: []Job{
				{Kind: "inspection", Schedule: Schedule{Every: "daily", At: "07:00"}, Build: build("inspection")},
				{Kind: "capacity", Schedule: Schedule{Every: "weekly", Weekday: "monday", At: "08:00"}, Build: build("capacity")},
			}}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- s.Run(ctx) }()

		time.Sleep(time.Date(2000, 1, 3, 9, 0, 0, 0, time.UTC).Sub(start)) // Monday 09:00
		synctest.Wait()
		mu.Lock()
		got := strings.Join(ran, ", ")
		mu.Unlock()
		want := "inspection Sat 01-01 07:00, inspection Sun 01-02 07:00, inspection Mon 01-03 07:00, capacity Mon 01-03 08:00"
		if got != want {
			t.Errorf("runs:\n got  %s\n want %s", got, want)
		}
		if !strings.Contains(logs.String(), "tsdb unreachable") {
			t.Errorf("the failed build was not logged: %s", logs.String())
		}
		ents, _ := os.ReadDir(dir)
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		wantFiles := "capacity-20000103T080000Z.html inspection-20000102T070000Z.html inspection-20000103T070000Z.html"
		if strings.Join(names, " ") != wantFiles {
			t.Errorf("kept %v, want %s", names, wantFiles)
		}
		if n := strings.Count(console.String(), "[REPORT]"); n != 3 {
			t.Errorf("%d reports posted to the console, want 3:\n%s", n, console.String())
		}
		if !strings.Contains(console.String(), filepath.Join(dir, "capacity-20000103T080000Z.html")) {
			t.Errorf("the console post does not say where the report is kept:\n%s", console.String())
		}
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

// Against slack-go's slacktest server (the real Slack is unreachable
// from tests). slacktest v0.35.0 does not serve the file upload flow
// UploadFileContext uses (files.getUploadURLExternal, the upload URL,
// files.completeUploadExternal); the test registers those three on
// slacktest's mux, as alerting's tests do.
func TestSlackPosterUploadsTheReport_slacktest(t *testing.T) {
	var mu sync.Mutex
	var uploaded []byte
	var complete url.Values
	srv := slacktest.NewTestServer(func(c slacktest.Customize) {
		c.Handle("/files.getUploadURLExternal", func(w http.ResponseWriter, r *http.Request) {
			base := r.Context().Value(slacktest.ServerURLContextKey).(string)
			_ = r.ParseForm()
			writeSlackJSON(w, map[string]any{"ok": true, "upload_url": base + "upload/F1", "file_id": "F1"})
		})
		c.Handle("/upload/", func(w http.ResponseWriter, r *http.Request) {
			f, _, err := r.FormFile("file")
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			b, _ := io.ReadAll(f)
			mu.Lock()
			uploaded = b
			mu.Unlock()
			_, _ = w.Write([]byte("OK"))
		})
		c.Handle("/files.completeUploadExternal", func(w http.ResponseWriter, r *http.Request) {
			_ = r.ParseForm()
			mu.Lock()
			complete = r.Form
			mu.Unlock()
			var files []map[string]string
			_ = json.Unmarshal([]byte(r.Form.Get("files")), &files)
			writeSlackJSON(w, map[string]any{"ok": true, "files": files})
		})
	})
	srv.Start()
	defer srv.Stop()

	var console bytes.Buffer
	p := NewSlackPoster("xoxb-test", srv.GetAPIURL(), &ConsolePoster{W: &console})
	s := &Scheduler{Dir: t.TempDir(), Keep: 5, Poster: p}
	body := []byte("<html>capacity</html>")
	job := Job{Kind: "capacity", Build: func(context.Context, time.Time) (Built, error) {
		return Built{Kind: "capacity", Name: "capacity-x.html", Body: body, Summary: "datacenter B needs 40 more cores by 2027-01-15", Channel: "C0CAPACITY"}, nil
	}}
	path, err := s.RunJob(context.Background(), job, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if !bytes.Equal(uploaded, body) {
		t.Errorf("uploaded %q, want the report", uploaded)
	}
	if complete.Get("channel_id") != "C0CAPACITY" || !strings.Contains(complete.Get("initial_comment"), "40 more cores") {
		t.Errorf("files.completeUploadExternal form %v: want the channel and the summary as the comment", complete)
	}
	if kept, _ := os.ReadFile(path); !bytes.Equal(kept, body) {
		t.Errorf("kept %q at %s", kept, path)
	}
	if console.Len() != 0 {
		t.Errorf("a report with a channel went to the console too: %s", console.String())
	}
	// Without a channel the report goes to the console.
	job.Build = func(context.Context, time.Time) (Built, error) {
		return Built{Kind: "inspection", Name: "inspection-x.html", Body: body, Summary: "all ok\n"}, nil
	}
	if _, err := s.RunJob(context.Background(), job, time.Now()); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(console.String(), "[REPORT] inspection report kept at") {
		t.Errorf("console: %q", console.String())
	}
}

func writeSlackJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func FuzzParseTimeOfDay(f *testing.F) {
	for _, s := range []string{"08:00", "23:59", "7:5", "24:00", "-1:00", "+1:00", "", "12"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseTimeOfDay(s)
		if err != nil {
			return
		}
		if d < 0 || d >= 24*time.Hour || d%time.Minute != 0 {
			t.Fatalf("%q parsed to %s", s, d)
		}
		next := (Schedule{Every: "daily", At: s}).Next(time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC))
		if next.IsZero() {
			t.Fatalf("%q parses but never fires", s)
		}
	})
}

func FuzzScheduleValidate(f *testing.F) {
	f.Add("weekly", "monday", "08:00")
	f.Add("daily", "", "7:00")
	f.Fuzz(func(t *testing.T, every, weekday, at string) {
		s := Schedule{Every: every, Weekday: weekday, At: at}
		ps := s.validate()
		for _, p := range ps {
			if p.Field == "" || p.Msg == "" {
				t.Fatalf("problem without field or message: %+v", p)
			}
		}
		if len(ps) == 0 && every != "off" && s.Next(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)).IsZero() {
			t.Fatalf("valid schedule %+v never fires", s)
		}
	})
}

var _ config.Validator = Config{}

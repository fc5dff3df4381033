package report

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// The report as a planner sees it: opened in headless Chromium (Debian's
// chromium, driven by chromedp). Every chart must have rendered with a
// size, and the page must log no error; a screenshot is kept.

func skipWithoutBrowser(t *testing.T) {
	t.Helper()
	if _, err := FindBrowser(); err != nil {
		t.Skipf("skipped, needs headless Chromium: %v", err)
	}
}

// artifactDir is $OPSPILOT_ARTIFACTS, or the test's temporary directory.
func artifactDir(t *testing.T) string {
	if d := os.Getenv("OPSPILOT_ARTIFACTS"); d != "" {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		return d
	}
	return t.TempDir()
}

type chartSize struct {
	Alt           string  `json:"alt"`
	Complete      bool    `json:"complete"`
	NaturalWidth  float64 `json:"nw"`
	NaturalHeight float64 `json:"nh"`
	Width         float64 `json:"w"`
	Height        float64 `json:"h"`
}

func TestCapacityReportRendersInChromium(t *testing.T) {
	skipWithoutBrowser(t)
	rep := buildGrowthReport(t)
	var buf bytes.Buffer
	if err := rep.WriteHTML(&buf); err != nil {
		t.Fatal(err)
	}
	charts := len(regexp.MustCompile(`<img class="chart"`).FindAllIndex(buf.Bytes(), -1))
	if charts < 2 {
		t.Fatalf("%d charts in the report, want at least the growth datacenter's 2", charts)
	}
	page := filepath.Join(t.TempDir(), "capacity.html")
	if err := os.WriteFile(page, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	bctx, stop, err := NewBrowser(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	if err := chromedp.Do(bctx); err != nil { // start the browser and its tab
		t.Fatalf("start Chromium: %v", err)
	}

	// Collect the console from before the page loads.
	var mu sync.Mutex
	var msgs []chromedp.ConsoleMessage
	cctx, ccancel := context.WithCancel(bctx)
	consoleDone := make(chan struct{})
	messages := chromedp.Console(cctx)
	go func() {
		defer close(consoleDone)
		for m, err := range messages {
			if err != nil {
				return
			}
			mu.Lock()
			msgs = append(msgs, m)
			mu.Unlock()
		}
	}()

	if err := chromedp.Do(bctx, chromedp.EmulateViewport(1280, 900), chromedp.Navigate("file://"+page)); err != nil {
		t.Fatalf("open the report: %v", err)
	}
	sizes, err := chromedp.Run(bctx, chromedp.Evaluate[[]chartSize](`Array.from(document.querySelectorAll("img.chart")).map(i => {
		const r = i.getBoundingClientRect();
		return {alt: i.alt, complete: i.complete, nw: i.naturalWidth, nh: i.naturalHeight, w: r.width, h: r.height};
	})`))
	if err != nil {
		t.Fatal(err)
	}
	if len(sizes) != charts {
		t.Errorf("the browser sees %d charts, the HTML has %d", len(sizes), charts)
	}
	for i, s := range sizes {
		if !s.Complete || s.NaturalWidth <= 0 || s.NaturalHeight <= 0 || s.Width <= 0 || s.Height <= 0 {
			t.Errorf("chart %d (%s) did not render: %+v", i, s.Alt, s)
		}
	}

	shot, err := chromedp.Run(bctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	shotPath := filepath.Join(artifactDir(t), "capacity-report.png")
	if err := os.WriteFile(shotPath, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot of the report (%d charts rendered): %s", len(sizes), shotPath)

	// A probe proves the console is heard: it must arrive, and be the only
	// error.
	if _, err := chromedp.Run(bctx, chromedp.Evaluate[any](`console.error("opspilot-console-probe"), null`)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		heard := false
		for _, m := range msgs {
			heard = heard || strings.Contains(m.Text, "opspilot-console-probe")
		}
		mu.Unlock()
		if heard {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the console probe never arrived: console messages are not being observed")
		}
		time.Sleep(50 * time.Millisecond)
	}
	ccancel()
	<-consoleDone
	for _, m := range msgs {
		if strings.Contains(m.Text, "opspilot-console-probe") {
			continue
		}
		if m.Type == chromedp.ConsoleError || m.Type == chromedp.ConsoleException || m.Type == chromedp.ConsoleWarning {
			t.Errorf("console %s: %s (%s:%d)", m.Type, m.Text, m.URL, m.Line)
		}
	}
}

var pdfPageRE = regexp.MustCompile(`/Type\s*/Page[^s]`)

func TestCapacityReportPrintsToPDF(t *testing.T) {
	skipWithoutBrowser(t)
	rep := buildGrowthReport(t)
	var buf bytes.Buffer
	if err := rep.WriteHTML(&buf); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	pdf, err := PrintPDF(ctx, buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(pdf, []byte("%PDF-")) || !bytes.Contains(pdf[max(0, len(pdf)-1024):], []byte("%%EOF")) {
		t.Fatalf("not a PDF: %q…", pdf[:min(len(pdf), 16)])
	}
	pages := len(pdfPageRE.FindAll(pdf, -1))
	if pages < 1 {
		t.Fatal("the PDF has no page")
	}
	path := filepath.Join(artifactDir(t), "capacity-report.pdf")
	if err := os.WriteFile(path, pdf, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("PDF: %d pages, %d bytes: %s", pages, len(pdf), path)
}

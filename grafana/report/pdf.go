package report

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/chromedp/chromedp"
)

// ErrNoBrowser is returned when no Chromium can be found.
var ErrNoBrowser = errors.New("no Chromium found: install it (Debian: apt-get install chromium) or set OPSPILOT_CHROMIUM to its path")

// FindBrowser returns the Chromium (or Chrome) to print with:
// $OPSPILOT_CHROMIUM, else the first of chromium, chromium-browser,
// google-chrome, headless-shell on PATH.
func FindBrowser() (string, error) {
	if p := os.Getenv("OPSPILOT_CHROMIUM"); p != "" {
		if _, err := exec.LookPath(p); err != nil {
			return "", fmt.Errorf("OPSPILOT_CHROMIUM=%s: %w", p, err)
		}
		return p, nil
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "headless-shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", ErrNoBrowser
}

// NewBrowser starts headless Chromium; the returned context runs chromedp
// actions in one tab, and cancel stops the browser.
func NewBrowser(ctx context.Context) (context.Context, context.CancelFunc, error) {
	path, err := FindBrowser()
	if err != nil {
		return nil, nil, err
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path))
	if os.Geteuid() == 0 {
		// Chromium refuses to run its sandbox as root.
		opts = append(opts, chromedp.NoSandbox)
	}
	actx, acancel := chromedp.NewExecAllocator(ctx, opts...)
	bctx, bcancel := chromedp.NewContext(actx)
	return bctx, func() { bcancel(); acancel() }, nil
}

// PrintPDF renders a self-contained HTML page with headless Chromium and
// prints it to A4 PDF (page.printToPDF), backgrounds included.
func PrintPDF(ctx context.Context, html []byte) ([]byte, error) {
	dir, err := os.MkdirTemp("", "opspilot-report-")
	if err != nil {
		return nil, fmt.Errorf("print PDF: %w", err)
	}
	defer os.RemoveAll(dir)
	page := filepath.Join(dir, "report.html")
	if err := os.WriteFile(page, html, 0o600); err != nil {
		return nil, fmt.Errorf("print PDF: %w", err)
	}
	bctx, cancel, err := NewBrowser(ctx)
	if err != nil {
		return nil, fmt.Errorf("print PDF: %w", err)
	}
	defer cancel()
	if err := chromedp.Do(bctx, chromedp.Navigate("file://"+page)); err != nil {
		return nil, fmt.Errorf("print PDF: open the report in Chromium: %w", err)
	}
	pdf, err := chromedp.Run(bctx, chromedp.PrintToPDF(chromedp.PDFPaper(chromedp.PaperA4), chromedp.PDFMargin(0.4), chromedp.PDFPrintBackground()))
	if err != nil {
		return nil, fmt.Errorf("print PDF: %w", err)
	}
	return pdf, nil
}

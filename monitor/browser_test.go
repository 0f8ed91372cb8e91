package monitor

import (
	"context"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// chromium runs Debian's headless Chromium with the flags this closed
// network needs, returning its stdout.
func chromium(t *testing.T, args ...string) string {
	t.Helper()
	bin, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatal("chromium not found: install Debian's chromium package (make test does)")
	}
	base := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
		"--user-data-dir=" + t.TempDir()}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append(base, args...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium %v: %v\n%s", args, err, stderr.String())
	}
	return string(out)
}

// TestStatusPageInChromium loads the status page in a real browser: the
// charts must be in the rendered DOM and the screenshot must show them.
func TestStatusPageInChromium(t *testing.T) {
	srv, _, _ := testServer(t, "x")
	dom := chromium(t, "--virtual-time-budget=5000", "--dump-dom", srv.URL+"/")
	if n := strings.Count(dom, `class="chart"`); n != 3 {
		t.Errorf("rendered DOM has %d charts, want 3", n)
	}
	for _, want := range []string{`class="value"`, `class="band"`, `class="baseline"`} {
		if !strings.Contains(dom, want) {
			t.Errorf("rendered DOM lacks %s", want)
		}
	}
	shot := filepath.Join(t.TempDir(), "page.png")
	chromium(t, "--window-size=1200,1600", "--hide-scrollbars", "--screenshot="+shot, srv.URL+"/")
	f, err := os.Open(shot)
	if err != nil {
		t.Fatalf("no screenshot: %v", err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("screenshot is not a PNG: %v", err)
	}
	// Count red pixels: the current-value lines and firing marks are drawn
	// in #c0392b; a blank or unstyled page has none.
	b := img.Bounds()
	red, nonWhite := 0, 0
	for y := b.Min.Y; y < b.Max.Y; y += 2 {
		for x := b.Min.X; x < b.Max.X; x += 2 {
			r, g, bl, _ := img.At(x, y).RGBA()
			r, g, bl = r>>8, g>>8, bl>>8
			if r < 250 || g < 250 || bl < 250 {
				nonWhite++
			}
			if r > 150 && g < 90 && bl < 90 {
				red++
			}
		}
	}
	if nonWhite < 2000 || red < 50 {
		t.Errorf("screenshot looks blank: %d non-white and %d red sampled pixels", nonWhite, red)
	}
}

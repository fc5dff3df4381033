package testbin

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/moby/moby/client"
)

// ScratchImage builds target (a Go package or file, relative to dir) as a
// static Linux binary and an image FROM scratch holding it at /NAME, its
// entrypoint, through the engine's build API (no registry is reachable
// here). The image is removed when the test ends; ScratchImage returns its
// tag.
func ScratchImage(t testing.TB, cli *client.Client, dir, target, name string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	bin := filepath.Join(t.TempDir(), name)
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, target)
	build.Dir = dir
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build %s: %v\n%s", target, err, out)
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range []struct {
		name string
		mode int64
		data []byte
	}{
		{"Dockerfile", 0o644, fmt.Appendf(nil, "FROM scratch\nCOPY %s /%s\nENTRYPOINT [\"/%s\"]\n", name, name, name)},
		{name, 0o755, data},
	} {
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: f.mode, Size: int64(len(f.data))}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(f.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	tag := fmt.Sprintf("opspilot-test-%s:%d", name, time.Now().UnixNano())
	res, err := cli.ImageBuild(ctx, &buf, client.ImageBuildOptions{Tags: []string{tag}, Remove: true, ForceRemove: true})
	if err != nil {
		t.Fatalf("build image %s: %v", tag, err)
	}
	defer res.Body.Close()
	t.Cleanup(func() {
		if _, err := cli.ImageRemove(context.Background(), tag, client.ImageRemoveOptions{Force: true, PruneChildren: true}); err != nil {
			t.Logf("remove image %s: %v", tag, err)
		}
	})
	dec := json.NewDecoder(res.Body)
	for {
		var msg struct {
			Error       string
			ErrorDetail *struct{ Message string } `json:"errorDetail"`
		}
		if err := dec.Decode(&msg); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("build image %s: read progress: %v", tag, err)
		}
		if msg.ErrorDetail != nil {
			t.Fatalf("build image %s: %s", tag, msg.ErrorDetail.Message)
		}
		if msg.Error != "" {
			t.Fatalf("build image %s: %s", tag, msg.Error)
		}
	}
	return tag
}

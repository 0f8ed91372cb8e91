package main

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckConfig(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run([]string{"check-config", "--config", "../../configs/example.yaml"}, &out, &errOut); code != 0 {
		t.Fatalf("example.yaml: exit %d: %s", code, errOut.String())
	}
	files, _ := filepath.Glob("../../configs/testdata/*.yaml")
	bad := 0
	for _, path := range files {
		if strings.HasPrefix(filepath.Base(path), "good-") {
			continue
		}
		bad++
		t.Run(filepath.Base(path), func(t *testing.T) {
			f, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			sc := bufio.NewScanner(f)
			sc.Scan()
			f.Close()
			want := path + ":" + strings.TrimPrefix(sc.Text(), "# error: ")
			var out, errOut bytes.Buffer
			code := run([]string{"check-config", "--config", path}, &out, &errOut)
			if code != 1 {
				t.Fatalf("exit %d, want 1", code)
			}
			if !strings.Contains(errOut.String()+"\n", want+"\n") {
				t.Fatalf("stderr lacks %q:\n%s", want, errOut.String())
			}
		})
	}
	if bad < 15 {
		t.Fatalf("only %d bad configs", bad)
	}
}

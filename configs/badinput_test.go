package configs

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestAliasBombIsCheap: nested YAML aliases that expand to 9^12 nodes are
// refused in milliseconds. Indexing the lines of every path used to follow
// each alias, which took minutes and gigabytes for a few hundred bytes.
func TestAliasBombIsCheap(t *testing.T) {
	var b strings.Builder
	b.WriteString(`l0: &l0 ["x","x","x","x","x","x","x","x","x"]` + "\n")
	for i := 1; i <= 12; i++ {
		refs := strings.Repeat("*l"+itoa(i-1)+",", 8) + "*l" + itoa(i-1)
		b.WriteString("l" + itoa(i) + ": &l" + itoa(i) + " [" + refs + "]\n")
	}
	b.WriteString("models: [{name: fraud, table: predictions, slices: *l12}]\n")
	start := time.Now()
	_, err := Parse("bomb.yaml", []byte(b.String()), noEnv)
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("an alias bomb took %s to refuse", took)
	}
	var probs Problems
	if !errors.As(err, &probs) || !strings.Contains(err.Error(), `bomb.yaml:1: l0: unknown key "l0"`) {
		t.Fatalf("want the unknown keys reported, got %v", err)
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

// TestTenMegabyteConfig: a 10 MB file is refused before it is parsed, with
// the limit in the message.
func TestTenMegabyteConfig(t *testing.T) {
	path := filepath.Join(t.TempDir(), "huge.yaml")
	var b bytes.Buffer
	b.WriteString("models:\n  - name: fraud\n    table: predictions\n    owners: {product: team, infra: team}\n")
	for b.Len() < 10<<20 {
		b.WriteString("# padding padding padding padding padding padding padding padding padding\n")
	}
	if err := os.WriteFile(path, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err := Load(path, noEnv)
	want := path + ": config is larger than 4 MiB; refusing to parse it"
	if err == nil || err.Error() != want {
		t.Fatalf("got %v, want %s", err, want)
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("refusing a 10 MB config took %s", took)
	}
}

package main

import (
	"archive/zip"
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

func TestZipDir(t *testing.T) {
	dir := t.TempDir()
	files := []struct {
		name     string
		mode     os.FileMode
		wantMode os.FileMode
	}{
		// bootstrap gets 0755 even when the build left it unexecutable
		// (a checkout on a filesystem without the bit, say).
		{"bootstrap", 0o644, 0o755},
		{"config/tenants.json", 0o600, 0o600},
		{"helper", 0o750, 0o750},
	}
	for _, f := range files {
		p := filepath.Join(dir, "in", f.name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("content of "+f.name), f.mode); err != nil {
			t.Fatal(err)
		}
		// WriteFile's mode passes through the umask; set it exactly.
		if err := os.Chmod(p, f.mode); err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(dir, "out.zip")
	if err := zipDir(out, filepath.Join(dir, "in")); err != nil {
		t.Fatal(err)
	}
	zr, err := zip.OpenReader(out)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	if len(zr.File) != len(files) {
		t.Fatalf("archive has %d entries, want %d", len(zr.File), len(files))
	}
	for i, f := range files {
		zf := zr.File[i]
		if zf.Name != f.name {
			t.Errorf("entry %d is %q, want %q", i, zf.Name, f.name)
		}
		if got := zf.Mode().Perm(); got != f.wantMode {
			t.Errorf("%s: mode %v, want %v", f.name, got, f.wantMode)
		}
		if !zf.Modified.Equal(epoch) {
			t.Errorf("%s: modified %v, want %v", f.name, zf.Modified, epoch)
		}
	}

	// The same input packs to the same bytes.
	first, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if err := zipDir(out, filepath.Join(dir, "in")); err != nil {
		t.Fatal(err)
	}
	second, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(first, second) {
		t.Error("packing the same directory twice gave different archives")
	}
}

func TestZipDirErrors(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name  string
		setup func() string // returns the directory to pack
	}{
		{"missing directory", func() string { return filepath.Join(dir, "nope") }},
		{"empty directory", func() string {
			p := filepath.Join(dir, "empty")
			if err := os.Mkdir(p, 0o755); err != nil {
				t.Fatal(err)
			}
			return p
		}},
		{"symbolic link", func() string {
			p := filepath.Join(dir, "link")
			if err := os.Mkdir(p, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink("/etc/hostname", filepath.Join(p, "bootstrap")); err != nil {
				t.Skip("no symbolic links here:", err)
			}
			return p
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := filepath.Join(dir, tt.name+".zip")
			if err := zipDir(out, tt.setup()); err == nil {
				t.Fatal("zipDir succeeded, want an error")
			}
			if _, err := os.Stat(out); !os.IsNotExist(err) {
				t.Errorf("a failed run left %s behind (stat: %v)", out, err)
			}
			leftovers, _ := filepath.Glob(filepath.Join(dir, ".zipdir-*"))
			if len(leftovers) > 0 {
				t.Errorf("a failed run left temporary files: %v", leftovers)
			}
		})
	}
}

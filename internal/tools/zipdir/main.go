// Command zipdir packs a directory into a zip archive for a Lambda
// deployment package. scripts/build-lambda.sh uses it where the zip tool is
// not installed:
//
//	go run ./internal/tools/zipdir -o dist/streamhandler.zip dist/streamhandler
//
// Paths in the archive are relative to the directory. A file named
// bootstrap (the entry point of a provided.al2023 function) is stored with
// mode 0755 whatever its mode on disk, since Lambda cannot run it otherwise;
// other files keep their permission bits. Entries are sorted and stamped
// with a fixed time, so the same input gives the same archive byte for byte
// and `sam deploy` sees no change when the code did not change.
package main

import (
	"archive/zip"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// epoch is the timestamp of every entry: the earliest an MS-DOS date, which
// zip stores, can hold.
var epoch = time.Date(1980, 1, 1, 0, 0, 0, 0, time.UTC)

func main() {
	out := flag.String("o", "", "archive to write (required)")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: zipdir -o ARCHIVE.zip DIR\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if *out == "" || flag.NArg() != 1 {
		flag.Usage()
		os.Exit(2)
	}
	if err := zipDir(*out, flag.Arg(0)); err != nil {
		fmt.Fprintf(os.Stderr, "zipdir: %v\n", err)
		os.Exit(1)
	}
}

// zipDir writes the regular files under dir to a new archive at out. The
// archive is written next to out and renamed into place, so a failed run
// leaves no truncated archive behind.
func zipDir(out, dir string) (err error) {
	info, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if !info.IsDir() {
		return fmt.Errorf("%s is not a directory", dir)
	}
	tmp, err := os.CreateTemp(filepath.Dir(out), ".zipdir-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	n, err := writeZip(tmp, dir)
	if err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("%s has no files to pack", dir)
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), out)
}

// writeZip writes the archive of dir to w and returns the number of files
// in it. filepath.WalkDir visits entries in lexical order, which makes the
// output deterministic.
func writeZip(w io.Writer, dir string) (int, error) {
	zw := zip.NewWriter(w)
	n := 0
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		if !d.Type().IsRegular() {
			return fmt.Errorf("%s: not a regular file (symbolic links are not packed)", path)
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		mode := info.Mode().Perm()
		if rel == "bootstrap" {
			mode = 0o755
		}
		hdr := &zip.FileHeader{
			Name:     filepath.ToSlash(rel),
			Method:   zip.Deflate,
			Modified: epoch,
		}
		hdr.SetMode(mode)
		dst, err := zw.CreateHeader(hdr)
		if err != nil {
			return err
		}
		src, err := os.Open(path)
		if err != nil {
			return err
		}
		_, err = io.Copy(dst, src)
		if cerr := src.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		n++
		return nil
	})
	if cerr := zw.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return 0, err
	}
	return n, nil
}

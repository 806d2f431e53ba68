package main

import (
	"archive/tar"
	"archive/zip"
	"compress/flate"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"
)

// archiveFile is one file of an archive: its name inside, the file it is
// read from and its mode there. A tar may also hold directories: a mode
// with os.ModeDir (the sticky bit kept) and no path.
type archiveFile struct {
	name string
	path string
	mode os.FileMode
}

// sorted returns files ordered by name: the archives' fixed order.
func sorted(files []archiveFile) []archiveFile {
	out := slices.Clone(files)
	slices.SortFunc(out, func(a, b archiveFile) int { return strings.Compare(a.name, b.name) })
	return out
}

// writeTarGz writes files into a gzip-compressed tar at path: sorted
// (a directory's entry before what it holds), every mtime mtime, uid and gid 0 with no names, the given modes, and a
// gzip header without file name or time — the same bytes on every run.
func writeTarGz(path string, files []archiveFile, mtime time.Time) (err error) {
	return writeFile(path, func(w io.Writer) error {
		gz, err := gzip.NewWriterLevel(w, gzip.BestCompression)
		if err != nil {
			return err
		}
		tw := tar.NewWriter(gz)
		for _, f := range sorted(files) {
			mode := int64(f.mode.Perm())
			if f.mode&os.ModeSticky != 0 {
				mode |= 0o1000 // tar's TSVTX
			}
			if f.mode.IsDir() {
				hdr := &tar.Header{Typeflag: tar.TypeDir, Name: f.name + "/", Mode: mode, ModTime: mtime, Format: tar.FormatUSTAR}
				if err := tw.WriteHeader(hdr); err != nil {
					return err
				}
				continue
			}
			err := copyInto(f, func(size int64) (io.Writer, error) {
				hdr := &tar.Header{Typeflag: tar.TypeReg, Name: f.name, Size: size, Mode: mode, ModTime: mtime, Format: tar.FormatUSTAR}
				return tw, tw.WriteHeader(hdr)
			})
			if err != nil {
				return err
			}
		}
		if err := tw.Close(); err != nil {
			return err
		}
		return gz.Close()
	})
}

// writeZip writes files into a zip at path: sorted, deflated, the MS-DOS
// time of mtime only (no extended timestamp field, which archive/zip adds
// for a FileHeader.Modified), the given modes as Unix attributes.
func writeZip(path string, files []archiveFile, mtime time.Time) error {
	date, clock := msDosTime(mtime)
	return writeFile(path, func(w io.Writer) error {
		zw := zip.NewWriter(w)
		zw.RegisterCompressor(zip.Deflate, func(w io.Writer) (io.WriteCloser, error) {
			return flate.NewWriter(w, flate.BestCompression)
		})
		for _, f := range sorted(files) {
			err := copyInto(f, func(int64) (io.Writer, error) {
				hdr := &zip.FileHeader{Name: f.name, Method: zip.Deflate, ModifiedDate: date, ModifiedTime: clock}
				hdr.SetMode(f.mode)
				return zw.CreateHeader(hdr)
			})
			if err != nil {
				return err
			}
		}
		return zw.Close()
	})
}

// msDosTime is t (UTC) as a zip entry's MS-DOS date and time.
func msDosTime(t time.Time) (date, clock uint16) {
	t = t.UTC()
	date = uint16(t.Day() + int(t.Month())<<5 + (t.Year()-1980)<<9)
	clock = uint16(t.Second()/2 + t.Minute()<<5 + t.Hour()<<11)
	return date, clock
}

// copyInto copies f's file into the writer open returns for its size.
func copyInto(f archiveFile, open func(size int64) (io.Writer, error)) error {
	in, err := os.Open(f.path)
	if err != nil {
		return err
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return err
	}
	w, err := open(st.Size())
	if err != nil {
		return fmt.Errorf("%s: %w", f.name, err)
	}
	if _, err := io.Copy(w, in); err != nil {
		return fmt.Errorf("%s: %w", f.name, err)
	}
	return nil
}

// writeFile writes path through fill, under a temporary name renamed
// into place once complete.
func writeFile(path string, fill func(io.Writer) error) error {
	tmp := path + ".tmp"
	out, err := os.Create(tmp)
	if err != nil {
		return err
	}
	err = fill(out)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, path)
}

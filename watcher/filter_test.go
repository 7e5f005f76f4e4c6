package watcher

import (
	"path"
	"strings"
	"testing"

	"github.com/cvfeed/cvfeed/config"
)

func TestFilter(t *testing.T) {
	f := NewFilter(config.Folder{
		Include: config.DefaultInclude(),
		Exclude: []string{"*draft*", "archive/*"},
		MaxSize: 100,
	})
	for _, tc := range []struct {
		rel  string
		size int64
		want Skip
	}{
		{"cv.pdf", 10, SkipNone},
		{"CV.PDF", 10, SkipNone},
		{"sub/Lebenslauf.DocX", 10, SkipNone},
		{"scan.jpeg", 10, SkipNone},
		{"~$cv.docx", 10, SkipTemp},
		{"cv.pdf.part", 10, SkipTemp},
		{"cv.pdf.crdownload", 10, SkipTemp},
		{"cv.TMP", 10, SkipTemp},
		{"cv.docx~", 10, SkipTemp},
		{".cv.pdf", 10, SkipHidden},
		{"cv.txt", 10, SkipPattern},
		{"Makefile", 10, SkipPattern},
		{"cv-draft.pdf", 10, SkipPattern},
		{"archive/cv.pdf", 10, SkipPattern},
		{"archive2/cv.pdf", 10, SkipNone},
		{"cv.pdf", 0, SkipEmpty},
		{"cv.pdf", 101, SkipTooLarge},
		{"cv.pdf", 100, SkipNone},
	} {
		if got := f.File(tc.rel, tc.size); got != tc.want {
			t.Errorf("File(%q, %d) = %q, want %q", tc.rel, tc.size, got, tc.want)
		}
	}
	for _, tc := range []struct {
		rel  string
		want bool
	}{
		{"Data Scientist", true},
		{".snapshot", false},
		{"~$tmp", false},
		{"archive", true}, // "archive/*" excludes its files, not the name
	} {
		if got := f.Dir(tc.rel); got != tc.want {
			t.Errorf("Dir(%q) = %v, want %v", tc.rel, got, tc.want)
		}
	}
	if got := (&Filter{include: compile([]string{"*.pdf"})}).File("cv.pdf", 1e12); got != SkipNone {
		t.Errorf("max_size 0 must mean no limit, got %q", got)
	}
}

func FuzzFilter(f *testing.F) {
	for _, s := range []string{"cv.pdf", "~$x.docx", "a/b/c.PDF", "[", "\x00", "../../etc/passwd", "x.\xffpdf"} {
		f.Add(s, "*.pdf", int64(10))
		f.Add(s, "*", int64(10))
		f.Add(s, "*.[pP]df", int64(10))
	}
	f.Fuzz(func(t *testing.T, rel, pattern string, size int64) {
		fl := NewFilter(config.Folder{Include: []string{pattern}, Exclude: []string{pattern + "/x"}})
		_ = fl.File(rel, size)
		_ = fl.Dir(rel)
		// The suffix shortcut agrees with path.Match.
		if !strings.Contains(pattern, "/") {
			l := strings.ToLower(rel)
			want, _ := path.Match(strings.ToLower(pattern), path.Base(l))
			if got := fl.matches(fl.include, path.Dir(rel), path.Base(rel)); got != want {
				t.Errorf("matches(%q, %q) = %v, path.Match says %v", pattern, rel, got, want)
			}
		}
	})
}

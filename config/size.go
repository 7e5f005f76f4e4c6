package config

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// sizeUnit returns the number of bytes in a unit of max_size, given in
// lower case; false if it is not one.
func sizeUnit(unit string) (float64, bool) {
	switch unit {
	case "", "b":
		return 1, true
	case "kb":
		return 1e3, true
	case "mb":
		return 1e6, true
	case "gb":
		return 1e9, true
	case "kib":
		return 1 << 10, true
	case "mib":
		return 1 << 20, true
	case "gib":
		return 1 << 30, true
	}
	return 0, false
}

// parseSize parses a size such as "50MiB", "10 MB", "1.5GiB" or "0" into
// bytes, rounded to the nearest byte. Units are case-insensitive; KB, MB
// and GB are powers of 1000, KiB, MiB and GiB powers of 1024.
func parseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	i := strings.IndexFunc(t, func(r rune) bool { return !(r >= '0' && r <= '9' || r == '.') })
	if i < 0 {
		i = len(t)
	}
	num, unit := t[:i], strings.ToLower(strings.TrimSpace(t[i:]))
	mult, ok := sizeUnit(unit)
	if !ok || !validDecimal(num) {
		return 0, fmt.Errorf("invalid size %q: use bytes or a number with B, KB, MB, GB, KiB, MiB or GiB", s)
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil {
		return 0, fmt.Errorf("invalid size %q: %w", s, err)
	}
	bytes := math.Round(f * mult)
	if bytes >= math.MaxInt64 {
		return 0, fmt.Errorf("size %q is too large", s)
	}
	return int64(bytes), nil
}

// validDecimal reports whether s is digits with at most one inner dot.
func validDecimal(s string) bool {
	whole, frac, dot := strings.Cut(s, ".")
	return whole != "" && !strings.Contains(frac, ".") && (!dot || frac != "")
}

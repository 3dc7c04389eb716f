package decimal

import (
	"strconv"
	"testing"
)

func TestID(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"1", 1, true}, {"42", 42, true}, {"9223372036854775807", 9223372036854775807, true},
		{"", 0, false}, {"0", 0, false}, {"05", 0, false}, {"+5", 0, false}, {"-1", 0, false}, {"1e3", 0, false},
		{" 5", 0, false}, {"5 ", 0, false}, {"0x10", 0, false}, {"1_000", 0, false}, {"٣", 0, false},
		{"9223372036854775808", 0, false}, {"99999999999999999999", 0, false}, {"18446744073709551616", 0, false},
	} {
		got, ok := ID(c.in)
		if got != c.want || ok != c.ok {
			t.Errorf("ID(%q) = %d, %v; want %d, %v", c.in, got, ok, c.want, c.ok)
		}
	}
}

func TestAllDigits(t *testing.T) {
	for in, want := range map[string]bool{"": true, "0123456789": true, "12a": false, "+1": false, "1 ": false, "/": false, ":": false} {
		if AllDigits(in) != want || AllDigits([]byte(in)) != want {
			t.Errorf("AllDigits(%q) != %v", in, want)
		}
	}
}

// FuzzID: ID accepts exactly the strings that strconv formats positive
// int64s as.
func FuzzID(f *testing.F) {
	for _, s := range []string{"1", "+5", "-1", "05", "1e3", "9223372036854775808"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, ok := ID(s)
		p, err := strconv.ParseInt(s, 10, 64)
		want := err == nil && p > 0 && strconv.FormatInt(p, 10) == s
		if ok != want || (ok && n != p) {
			t.Fatalf("ID(%q) = %d, %v; ParseInt %d, %v", s, n, ok, p, err)
		}
	})
}

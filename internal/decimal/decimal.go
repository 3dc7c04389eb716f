// Package decimal checks and reads strings of decimal digits: the fields of
// ISO 8583 messages and card data, and the ids in API paths and queries.
package decimal

import "math"

// AllDigits reports whether every byte of s is an ASCII digit (true for an
// empty s: callers check lengths first).
func AllDigits[T ~string | ~[]byte](s T) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// ID reads a positive id written canonically: decimal digits only, no
// sign, no leading zero, no space, at most math.MaxInt64. "+5", "-1",
// "05", "0", "1e3", "" and "9223372036854775808" are not ids. Unlike
// strconv.ParseInt, one id has one spelling, so it can be compared,
// logged and cached as text.
func ID(s string) (int64, bool) {
	if len(s) == 0 || len(s) > 19 || s[0] == '0' || !AllDigits(s) {
		return 0, false
	}
	var n uint64
	for i := 0; i < len(s); i++ {
		n = n*10 + uint64(s[i]-'0')
	}
	if n > math.MaxInt64 {
		return 0, false
	}
	return int64(n), true
}

package cardhost

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// PANLength is the length of every PAN this issuer generates.
const PANLength = 16

// GeneratePAN returns a random 16-digit, Luhn-valid PAN whose prefix of
// len(binLow) digits lies in the inclusive range [binLow, binHigh]. Both
// bounds must be digit strings of equal length, 6 to 11 digits. Randomness
// comes from rnd (crypto/rand.Reader in production); the prefix and the
// account digits are drawn uniformly. Uniqueness is the caller's business
// (the database's unique PAN lookup hash), not this function's.
func GeneratePAN(binLow, binHigh string, rnd io.Reader) (string, error) {
	if len(binLow) != len(binHigh) || len(binLow) < 6 || len(binLow) > 11 ||
		!allDigits(binLow) || !allDigits(binHigh) {
		return "", fmt.Errorf("generate pan: bin range %q-%q: want two digit strings of equal length 6-11", binLow, binHigh)
	}
	lo, _ := strconv.ParseUint(binLow, 10, 64)
	hi, _ := strconv.ParseUint(binHigh, 10, 64)
	if lo > hi {
		return "", fmt.Errorf("generate pan: bin range %q-%q: low above high", binLow, binHigh)
	}
	prefix, err := randUint64n(rnd, hi-lo+1)
	if err != nil {
		return "", fmt.Errorf("generate pan: %w", err)
	}
	prefix += lo
	accountDigits := PANLength - 1 - len(binLow)
	var limit uint64 = 1
	for range accountDigits {
		limit *= 10
	}
	account, err := randUint64n(rnd, limit)
	if err != nil {
		return "", fmt.Errorf("generate pan: %w", err)
	}
	body := fmt.Sprintf("%0*d%0*d", len(binLow), prefix, accountDigits, account)
	return body + string('0'+LuhnCheckDigit(body)), nil
}

// randUint64n returns a uniform random number in [0, n), n > 0, by
// rejection sampling, so no value is more likely than another.
func randUint64n(rnd io.Reader, n uint64) (uint64, error) {
	if n == 0 {
		return 0, errors.New("random range is empty")
	}
	maxv := ^uint64(0) - (^uint64(0) % n) // values at or above are rejected
	var buf [8]byte
	for {
		if _, err := io.ReadFull(rnd, buf[:]); err != nil {
			return 0, fmt.Errorf("read random: %w", err)
		}
		v := binary.BigEndian.Uint64(buf[:])
		if v < maxv {
			return v % n, nil
		}
	}
}

// LuhnCheckDigit returns the digit that makes body followed by it pass the
// Luhn check, as a number 0-9 (not its ASCII digit). body must be all digits.
func LuhnCheckDigit(body string) byte {
	sum := 0
	double := true // the rightmost digit of body is doubled once the check digit follows it
	for i := len(body) - 1; i >= 0; i-- {
		d := int(body[i] - '0')
		if double {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
		double = !double
	}
	return byte((10 - sum%10) % 10)
}

// LuhnValid reports whether pan is 12-19 digits and passes the Luhn check.
func LuhnValid(pan string) bool {
	if len(pan) < 12 || len(pan) > 19 || !allDigits(pan) {
		return false
	}
	return LuhnCheckDigit(pan[:len(pan)-1]) == pan[len(pan)-1]-'0'
}

// MaskPAN returns pan as logs and admin views may show it: the first six and
// last four digits around "…". Anything shorter than 11 characters is masked
// entirely, since first6+last4 would then reveal all of it.
func MaskPAN(pan string) string {
	if len(pan) < 11 {
		return "…"
	}
	return pan[:6] + "…" + pan[len(pan)-4:]
}

// ExpiryFrom returns the expiry, YYMM, of a card issued at t and valid for
// years years: the same month, years later.
func ExpiryFrom(t time.Time, years int) string {
	return fmt.Sprintf("%02d%02d", (t.Year()+years)%100, int(t.Month()))
}

// parseExpiry splits a YYMM expiry into its year (20YY) and month.
func parseExpiry(expiry string) (year int, month time.Month, ok bool) {
	if len(expiry) != 4 || !allDigits(expiry) {
		return 0, 0, false
	}
	yy := int(expiry[0]-'0')*10 + int(expiry[1]-'0')
	mm := int(expiry[2]-'0')*10 + int(expiry[3]-'0')
	if mm < 1 || mm > 12 {
		return 0, 0, false
	}
	return 2000 + yy, time.Month(mm), true
}

// ExpiryOK reports whether expiry (YYMM) is well formed and not past at now:
// a card is valid through the last day of its expiry month, in UTC.
func ExpiryOK(expiry string, now time.Time) bool {
	y, m, ok := parseExpiry(expiry)
	if !ok {
		return false
	}
	now = now.UTC()
	ny, nm := now.Year(), now.Month()
	return ny < y || (ny == y && nm <= m)
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// ErrTrack2 is returned by ParseTrack2 for data that is not track 2
// equivalent data. Its messages never quote the data.
var ErrTrack2 = errors.New("track 2 malformed")

// ParseTrack2 splits track 2 equivalent data (DE35) into the PAN, the expiry
// (YYMM) and the service code. It accepts the field separator '=' or 'D'
// (the hex-packed form), optional start and end sentinels (';' and '?', and
// anything after the end sentinel, such as an LRC) and discretionary data of
// digits with an optional trailing 'F' pad. The PAN must be 12-19 digits.
func ParseTrack2(s string) (pan, expiry, serviceCode string, err error) {
	s = strings.TrimPrefix(s, ";")
	if i := strings.IndexByte(s, '?'); i >= 0 {
		s = s[:i]
	}
	sep := strings.IndexAny(s, "=Dd")
	if sep < 0 {
		return "", "", "", fmt.Errorf("%w: no field separator", ErrTrack2)
	}
	pan, rest := s[:sep], s[sep+1:]
	if len(pan) < 12 || len(pan) > 19 || !allDigits(pan) {
		return "", "", "", fmt.Errorf("%w: pan not 12-19 digits", ErrTrack2)
	}
	if len(rest) < 7 || !allDigits(rest[:7]) {
		return "", "", "", fmt.Errorf("%w: expiry and service code not 7 digits", ErrTrack2)
	}
	if _, _, ok := parseExpiry(rest[:4]); !ok {
		return "", "", "", fmt.Errorf("%w: expiry month out of range", ErrTrack2)
	}
	disc := strings.TrimRight(rest[7:], "Ff")
	if !allDigits(disc) {
		return "", "", "", fmt.Errorf("%w: discretionary data not digits", ErrTrack2)
	}
	if len(pan)+1+7+len(disc) > 37 {
		return "", "", "", fmt.Errorf("%w: longer than 37 characters", ErrTrack2)
	}
	return pan, rest[:4], rest[4:7], nil
}

package loadtest

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"github.com/moov-io/iso8583"
	"github.com/moov-io/iso8583/encoding"
	"github.com/moov-io/iso8583/prefix"
)

// codec packs requests and reads answers of one profile without building
// moov-io messages: the load generator must measure the switch, not its own
// message handling. It takes the field lengths and prefixes from the
// profile's moov-io spec, so it follows the spec the switch uses; it
// supports ASCII text, binary and right-padded BCD (the CMF's numerics)
// with ASCII or BCD length prefixes, which is every field of the default
// variant of both profiles. A codec is read-only after newCodec and safe
// for concurrent use.
type codec struct {
	bcdMTI bool
	fields [129]fieldSpec
}

type fieldSpec struct {
	ok     bool
	maxLen int
	fixed  bool
	bcd    bool // content is right-padded BCD: two digits a byte
	pref   prefix.Prefixer
	// bcdLen is the digits of a BCD length prefix (the CMF's LL and LLL),
	// 0 for other prefixes. Those are read and written here: moov-io's
	// BCD prefixer builds a new digit table on every call, which cost the
	// load generator a quarter of the machine's CPU.
	bcdLen int
}

var errAnswer = errors.New("malformed answer")

func newCodec(spec *iso8583.MessageSpec) (*codec, error) {
	c := &codec{bcdMTI: spec.Fields[0].Spec().Enc == encoding.LBCD}
	for n := 2; n <= 128; n++ {
		f, ok := spec.Fields[n]
		if !ok {
			continue
		}
		s := f.Spec()
		if s.Enc != encoding.ASCII && s.Enc != encoding.Binary && s.Enc != encoding.LBCD {
			return nil, fmt.Errorf("codec: DE%d: encoding %T not supported", n, s.Enc)
		}
		fs := fieldSpec{ok: true, maxLen: s.Length, fixed: strings.HasSuffix(s.Pref.Inspect(), ".Fixed"), bcd: s.Enc == encoding.LBCD, pref: s.Pref}
		if l, ok := strings.CutPrefix(s.Pref.Inspect(), "BCD."); ok && strings.Trim(l, "L") == "" && len(l) > 0 {
			fs.bcdLen = len(l)
		}
		c.fields[n] = fs
	}
	return c, nil
}

// field is one data element of a request: its number and value.
type field struct {
	n int
	v string
}

// pack appends the 2-byte length header and the message (MTI, binary
// bitmap, fields in ascending order) to dst. Fixed fields shorter than
// their length are padded with spaces on the right.
func (c *codec) pack(dst []byte, mti string, fields []field) ([]byte, error) {
	start := len(dst)
	dst = append(dst, 0, 0)
	if c.bcdMTI {
		dst = appendBCD(dst, mti)
	} else {
		dst = append(dst, mti...)
	}
	var bitmap [16]byte
	secondary := false
	for _, f := range fields {
		if f.n > 64 {
			secondary = true
		}
		bitmap[(f.n-1)/8] |= 0x80 >> ((f.n - 1) % 8)
	}
	if secondary {
		bitmap[0] |= 0x80
		dst = append(dst, bitmap[:]...)
	} else {
		dst = append(dst, bitmap[:8]...)
	}
	prev := 1
	for _, f := range fields {
		if f.n <= prev || f.n > 128 || !c.fields[f.n].ok {
			return nil, fmt.Errorf("pack: DE%d out of order or not in the spec", f.n)
		}
		prev = f.n
		fs := c.fields[f.n]
		if len(f.v) > fs.maxLen {
			return nil, fmt.Errorf("pack: DE%d longer than %d", f.n, fs.maxLen)
		}
		if fs.bcd && fs.fixed && len(f.v) != fs.maxLen {
			return nil, fmt.Errorf("pack: DE%d: %d digits, want %d", f.n, len(f.v), fs.maxLen)
		}
		if fs.fixed && fs.bcd {
			dst = appendBCD(dst, f.v)
			continue
		}
		if fs.fixed {
			dst = append(dst, f.v...)
			for i := len(f.v); i < fs.maxLen; i++ {
				dst = append(dst, ' ')
			}
			continue
		}
		if fs.bcdLen > 0 {
			dst = appendBCDLength(dst, fs.bcdLen, len(f.v))
		} else {
			p, err := fs.pref.EncodeLength(fs.maxLen, len(f.v))
			if err != nil {
				return nil, fmt.Errorf("pack: DE%d: %w", f.n, err)
			}
			dst = append(dst, p...)
		}
		if fs.bcd {
			dst = appendBCD(dst, f.v)
		} else {
			dst = append(dst, f.v...)
		}
	}
	n := len(dst) - start - 2
	if n > 0xffff {
		return nil, errors.New("pack: message longer than 65535 bytes")
	}
	binary.BigEndian.PutUint16(dst[start:], uint16(n))
	return dst, nil
}

// appendBCD appends the digits of v two a byte, an odd last one in the
// high nibble (jPOS's right-padded BCD).
func appendBCD(dst []byte, v string) []byte {
	for i := 0; i < len(v); i += 2 {
		b := (v[i] - '0') << 4
		if i+1 < len(v) {
			b |= v[i+1] - '0'
		}
		dst = append(dst, b)
	}
	return dst
}

// bcdString reads n digits of right-padded BCD.
func bcdString(b []byte, n int) string {
	out := make([]byte, n)
	for i := range out {
		c := b[i/2]
		if i%2 == 0 {
			c >>= 4
		}
		out[i] = '0' + c&0x0f
	}
	return string(out)
}

// answer is what the load generator reads of an answer.
type answer struct {
	mti  string
	stan string
	code string // DE39
}

// parse reads MTI, DE11 and DE39 of a message body (without the length
// header), walking the fields before DE39 by their spec lengths.
func (c *codec) parse(b []byte) (answer, error) {
	var a answer
	m := 4
	if c.bcdMTI {
		m = 2
	}
	if len(b) < m+8 {
		return a, errAnswer
	}
	if c.bcdMTI {
		a.mti = bcdString(b, 4)
	} else {
		a.mti = string(b[:4])
	}
	bm := b[m : m+8]
	off := m + 8
	if bm[0]&0x80 != 0 {
		if len(b) < m+16 {
			return a, errAnswer
		}
		bm = b[m : m+16]
		off = m + 16
	}
	for n := 2; n <= 39 && n <= len(bm)*8; n++ {
		if bm[(n-1)/8]&(0x80>>((n-1)%8)) == 0 {
			continue
		}
		fs := c.fields[n]
		if !fs.ok {
			return a, fmt.Errorf("%w: DE%d not in the spec", errAnswer, n)
		}
		var l, read int
		var err error
		if fs.bcdLen > 0 {
			l, read, err = bcdLength(b[off:], fs.bcdLen, fs.maxLen)
		} else {
			l, read, err = fs.pref.DecodeLength(fs.maxLen, b[off:])
		}
		if err != nil {
			return a, fmt.Errorf("%w: DE%d: %v", errAnswer, n, err)
		}
		off += read
		size := l
		if fs.bcd {
			size = (l + 1) / 2
		}
		if off+size > len(b) {
			return a, fmt.Errorf("%w: DE%d past the end", errAnswer, n)
		}
		if n == 11 || n == 39 {
			v := string(b[off : off+l])
			if fs.bcd {
				v = bcdString(b[off:], l)
			}
			if n == 11 {
				a.stan = v
			} else {
				a.code = v
			}
		}
		off += size
	}
	return a, nil
}

// appendBCDLength appends n as a BCD length prefix of digits digits,
// left-padded to whole bytes, as moov-io's BCD prefixer writes it (pack
// checked n against the field's maximum already).
func appendBCDLength(dst []byte, digits, n int) []byte {
	size := (digits + 1) / 2
	for i := size - 1; i >= 0; i-- {
		dst = append(dst, 0)
	}
	for i := len(dst) - 1; i >= len(dst)-size; i-- {
		dst[i] = byte(n%10) | byte(n/10%10)<<4
		n /= 100
	}
	return dst
}

// bcdLength reads a BCD length prefix of digits digits: the length, the
// bytes read, or an error for a nibble above 9 or a length above max.
func bcdLength(b []byte, digits, max int) (int, int, error) {
	size := (digits + 1) / 2
	if len(b) < size {
		return 0, 0, errAnswer
	}
	n := 0
	for _, c := range b[:size] {
		hi, lo := int(c>>4), int(c&0x0f)
		if hi > 9 || lo > 9 {
			return 0, 0, fmt.Errorf("length prefix %x is not BCD", b[:size])
		}
		n = n*100 + hi*10 + lo
	}
	if n > max {
		return 0, 0, fmt.Errorf("length %d above %d", n, max)
	}
	return n, size, nil
}

package specs

import (
	"errors"
	"fmt"

	"github.com/moov-io/iso8583"
	"github.com/moov-io/iso8583/encoding"
	"github.com/moov-io/iso8583/field"
	"github.com/moov-io/iso8583/prefix"
)

// ErrTrailing is returned by Check for bytes after a message's last field.
var ErrTrailing = errors.New("bytes after the last field")

// ErrText is returned by Check for a text field holding a control
// character (NUL among them): nothing downstream, the database included,
// is to see one.
var ErrText = errors.New("control character in a text field")

// FieldError names the data element a Check error is about.
type FieldError struct {
	Field int
	Err   error
}

func (e *FieldError) Error() string { return fmt.Sprintf("DE%d: %v", e.Field, e.Err) }
func (e *FieldError) Unwrap() error { return e.Err }

// Check validates what moov-io's Unpack does not: that m, unpacked from
// size bytes, used all of them (no bytes after its last field), and that
// no ASCII text field holds a control character. It allocates nothing.
func Check(m *iso8583.Message, size int) error {
	spec := m.GetSpec()
	used := 0
	if s := fieldSpec(spec, 0); s != nil {
		n, _ := wireLen(s, s.Length)
		used += n
	}
	bm := m.Bitmap()
	if s := fieldSpec(spec, 1); s != nil {
		n := bm.Len() / 8
		if s.Enc == encoding.BytesToASCIIHex {
			n *= 2
		}
		used += n
	}
	for n := 2; n <= bm.Len(); n++ {
		if !bm.IsSet(n) || bm.IsBitmapPresenceBit(n) {
			continue
		}
		f := m.GetField(n)
		if f == nil {
			continue
		}
		s := f.Spec()
		size, ok := 0, false
		switch v := f.(type) {
		case *field.String:
			val := v.Value()
			if s.Enc == encoding.ASCII {
				for i := 0; i < len(val); i++ {
					if c := val[i]; c < 0x20 || c == 0x7f {
						return &FieldError{n, ErrText}
					}
				}
			}
			size, ok = wireLen(s, len(val))
		case *field.Binary:
			size, ok = wireLen(s, len(v.Value()))
		}
		if !ok {
			b, err := f.Pack()
			if err != nil {
				return &FieldError{n, err}
			}
			size = len(b)
		}
		used += size
	}
	if used != size {
		return ErrTrailing
	}
	return nil
}

// wireLen is the packed size of a value of n characters (or bytes) of a
// field of spec s; ok is false for a prefix or encoding it does not know.
func wireLen(s *field.Spec, n int) (size int, ok bool) {
	pre := 0
	switch s.Pref {
	case prefix.ASCII.Fixed, prefix.BCD.Fixed, prefix.Binary.Fixed, prefix.Hex.Fixed:
		n = s.Length
	default:
		if d, ok := asciiDigits(s.Pref); ok {
			pre = d
		} else if d, ok := bcdDigits(s.Pref); ok {
			pre = (d + 1) / 2
		} else {
			return 0, false
		}
	}
	switch s.Enc {
	case encoding.ASCII, encoding.Binary:
		return pre + n, true
	case encoding.LBCD, encoding.BCD, nibbleBCD{}:
		return pre + (n+1)/2, true
	case encoding.BytesToASCIIHex:
		return pre + 2*n, true
	}
	return 0, false
}

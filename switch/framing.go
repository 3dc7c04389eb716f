package authswitch

import (
	"encoding/binary"
	"io"
)

// ReadLengthHeader reads the 2-byte big-endian length header that starts
// every frame in both profiles. Its signature is that of
// iso8583-connection's MessageLengthReader, so clients of the switch can
// pass it as is.
func ReadLengthHeader(r io.Reader) (int, error) {
	var h [2]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return 0, err
	}
	return int(binary.BigEndian.Uint16(h[:])), nil
}

// WriteLengthHeader writes the 2-byte big-endian length header of a frame
// of n bytes (iso8583-connection's MessageLengthWriter).
func WriteLengthHeader(w io.Writer, n int) (int, error) {
	var h [2]byte
	binary.BigEndian.PutUint16(h[:], uint16(n))
	return w.Write(h[:])
}

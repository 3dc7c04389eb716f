package specs

import (
	_ "embed"
	"fmt"
	"sync"

	"github.com/moov-io/iso8583"
	moovspecs "github.com/moov-io/iso8583/specs"
)

// The two ISO 8583 profiles of the switch, as moov-io spec-builder JSON.
// docs/iso8583.md documents every field and where its format comes from.
var (
	//go:embed iso87.json
	iso87JSON []byte
	//go:embed iso2003.json
	iso2003JSON []byte
)

type cachedSpec struct {
	once sync.Once
	spec *iso8583.MessageSpec
	err  error
}

func (c *cachedSpec) load(name string, data []byte) (*iso8583.MessageSpec, error) {
	c.once.Do(func() {
		c.spec, c.err = moovspecs.ImportJSON(data)
		if c.err != nil {
			c.err = fmt.Errorf("import %s spec: %w", name, c.err)
			return
		}
		useASCIICodec(c.spec)
	})
	return c.spec, c.err
}

var iso87Spec, iso2003Spec cachedSpec

// ISO87 returns the message spec of the iso87 profile: ISO 8583:1987 with
// ASCII fields as jPOS's ISO87APackager lays them out, a binary bitmap and
// DE52 as 8 raw bytes. The spec is built once and shared; it is safe for
// concurrent use and callers must not modify it.
func ISO87() (*iso8583.MessageSpec, error) {
	return iso87Spec.load("iso87", iso87JSON)
}

// ISO2003 returns the message spec of the iso2003 profile: the field formats
// of the public jPOS-CMF (ISO 8583:2003) in ASCII with a binary bitmap. The
// spec is built once and shared; it is safe for concurrent use and callers
// must not modify it.
func ISO2003() (*iso8583.MessageSpec, error) {
	return iso2003Spec.load("iso2003", iso2003JSON)
}

// ISOSpec returns the message spec of the named profile ("iso87" or
// "iso2003").
func ISOSpec(profile string) (*iso8583.MessageSpec, error) {
	switch profile {
	case "iso87":
		return ISO87()
	case "iso2003":
		return ISO2003()
	}
	return nil, fmt.Errorf("iso spec: unknown profile %q", profile)
}

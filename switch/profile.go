package authswitch

import (
	"fmt"
	"slices"

	"github.com/antaca/antaca/cardhost"
)

// Profile names.
const (
	ProfileISO2003 = "iso2003"
	ProfileISO87   = "iso87"
)

// profile holds what differs between the two wire profiles beyond the field
// formats of their specs.
type profile struct {
	name    string
	version byte // MTI version digit: '0' (1987) or '2' (2003)
	stanLen int  // DE11 width

	// Network management: the MTI of a request and the field carrying its
	// code (DE70 in 1987, DE24 function code in 2003).
	netMTI   string
	netField int
	signOn   string
	signOff  string
	echo     string

	// originalFields are read in order for the original data elements:
	// the CMF's DE56 for iso2003, DE90 (n42) for iso87.
	originalFields []int
	// cmf: the jPOS CMF's meanings (amounts with their currency inside,
	// DE22 POS data code, DE26 MCC, DE43/DE49 sub-fields, DE56 original
	// data, DE24 function codes, DE30 original amounts).
	cmf bool

	// echoFields are copied from the request into the answer when present.
	echoFields []int
	// errorEchoFields are copied into a format-error answer when they
	// could be read: what a QMUX-style client matches answers by.
	errorEchoFields []int
}

var profiles = map[string]*profile{
	ProfileISO87: {
		name:            ProfileISO87,
		version:         '0',
		stanLen:         6,
		netMTI:          "0800",
		netField:        70,
		signOn:          "001",
		signOff:         "002",
		echo:            "301",
		originalFields:  []int{90},
		echoFields:      []int{2, 3, 4, 6, 7, 11, 12, 13, 32, 37, 41, 42, 49, 51, 90, 95},
		errorEchoFields: []int{2, 7, 11, 32, 37, 41, 42},
	},
	ProfileISO2003: {
		name:           ProfileISO2003,
		version:        '2',
		stanLen:        12,
		netMTI:         "2804",
		netField:       24,
		signOn:         "801",
		signOff:        "802",
		echo:           "831",
		originalFields: []int{56},
		cmf:            true,
		// DE49 is the CMF's verification data (CVC2): never echoed.
		echoFields:      []int{2, 3, 4, 6, 7, 11, 12, 24, 30, 32, 37, 41, 42, 56},
		errorEchoFields: []int{2, 7, 11, 24, 32, 37, 41, 42},
	},
}

func lookupProfile(name string) (*profile, error) {
	p, ok := profiles[name]
	if !ok {
		return nil, fmt.Errorf("unknown profile %q (want %q or %q)", name, ProfileISO2003, ProfileISO87)
	}
	return p, nil
}

// classOf maps an MTI's class and function (positions 2-3, with a repeat
// in position 4 folded onto the original) to a message class.
func classOf(mti string) (cardhost.MessageClass, bool) {
	if len(mti) != 4 {
		return 0, false
	}
	switch mti[1:3] {
	case "10":
		return cardhost.ClassAuthorization, true
	case "20":
		return cardhost.ClassFinancial, true
	case "12":
		return cardhost.ClassAdvice, true
	case "22":
		return cardhost.ClassCompletion, true
	case "40":
		return cardhost.ClassReversal, true
	case "42":
		return cardhost.ClassReversalAdvice, true
	}
	return 0, false
}

// isRequestMTI reports whether mti is four digits whose message function
// (position 3) asks for an answer: request (0), advice (2), notification
// (4) or instruction (6). Answers are never answered, so two switches
// cannot bounce messages between them.
func isRequestMTI(mti string) bool {
	if len(mti) != 4 {
		return false
	}
	for i := 0; i < 4; i++ {
		if mti[i] < '0' || mti[i] > '9' {
			return false
		}
	}
	return (mti[2]-'0')%2 == 0 && mti[2] != '8'
}

// responseMTI is the MTI of the answer to a request: message function + 1,
// and the origin digit of a repeat (1, 3, 5) folded onto its original
// (0100 and 0101 → 0110, 2804 → 2814).
func responseMTI(mti string) string {
	b := []byte(mti)
	b[2]++
	if (b[3]-'0')%2 == 1 {
		b[3]--
	}
	return string(b)
}

// echoes reports whether DE n is copied from a request into its answer.
func (p *profile) echoes(n int) bool { return slices.Contains(p.echoFields, n) }

// cmfFunctionCodes are the DE24 function codes of the CMF's table each
// message class accepts (an absent DE24 is accepted as the class's
// first). 181/185 ask for partial approval, 187 is an incremental
// authorisation; 201 completes for the authorised amount, 202 for another,
// 280 (of the CMF's private range) is a completion that is not the last.
var cmfFunctionCodes = map[cardhost.MessageClass][]string{
	cardhost.ClassAuthorization:  {"100", "101", "108", "181", "185", "187"},
	cardhost.ClassAdvice:         {"100", "101", "108", "181", "185", "187"},
	cardhost.ClassFinancial:      {"200", "181", "185"},
	cardhost.ClassCompletion:     {"201", "202", "200", "280"},
	cardhost.ClassReversal:       {"400", "401"},
	cardhost.ClassReversalAdvice: {"400", "401"},
}

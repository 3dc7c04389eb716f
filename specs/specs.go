// Package specs holds the protocol documents as data: the ISO 8583 message
// specs of each profile (JSON for moov-io's spec builder), the OpenAPI
// document and the action-code table. They are embedded in the binary.
package specs

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"sync"
)

//go:embed actioncodes.json
var actionCodesJSON []byte

// ActionCodeRow is one row of the action-code table: a decline reason and
// its DE39 in each profile.
type ActionCodeRow struct {
	Reason  string `json:"reason"`
	ISO2003 string `json:"iso2003"`
	ISO87   string `json:"iso87"`
	Text    string `json:"text"`
}

var (
	actionOnce  sync.Once
	actionRows  []ActionCodeRow
	actionIndex map[string]ActionCodeRow
)

func loadActionCodes() {
	var doc struct {
		Codes []ActionCodeRow `json:"codes"`
	}
	if err := json.Unmarshal(actionCodesJSON, &doc); err != nil {
		panic(fmt.Sprintf("specs: actioncodes.json: %v", err)) // embedded at build time: a bad file is a build defect
	}
	actionRows = doc.Codes
	actionIndex = make(map[string]ActionCodeRow, len(doc.Codes))
	for _, r := range doc.Codes {
		actionIndex[r.Reason] = r
	}
}

// ActionCodes returns every row of the action-code table. It is safe for
// concurrent use; callers must not modify the result.
func ActionCodes() []ActionCodeRow {
	actionOnce.Do(loadActionCodes)
	return actionRows
}

// ActionCode returns DE39 for reason in profile ("iso2003" or "iso87").
func ActionCode(profile, reason string) (string, error) {
	actionOnce.Do(loadActionCodes)
	r, ok := actionIndex[reason]
	if !ok {
		return "", fmt.Errorf("action code: unknown reason %q", reason)
	}
	switch profile {
	case "iso2003":
		return r.ISO2003, nil
	case "iso87":
		return r.ISO87, nil
	}
	return "", fmt.Errorf("action code: unknown profile %q", profile)
}

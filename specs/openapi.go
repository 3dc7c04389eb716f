package specs

import _ "embed"

//go:embed openapi.json
var openAPIJSON []byte

// OpenAPI returns the OpenAPI 3.1 document of the REST API. Callers must
// not modify the result.
func OpenAPI() []byte { return openAPIJSON }

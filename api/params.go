package api

import "github.com/antaca/antaca/internal/decimal"

// queryID reads the optional query parameter name as an id: 0 when it is
// absent; 400 VALIDATION_ERROR unless it is canonical (decimal.ID: no sign,
// no leading zero, no exponent, at most 2^63-1), so that one id has one
// spelling.
func queryID(q *request, name string) (int64, error) {
	v, ok := q.URL.Query()[name]
	if !ok {
		return 0, nil
	}
	if id, ok := decimal.ID(v[0]); ok && len(v) == 1 {
		return id, nil
	}
	return 0, validation("%s must be one positive integer written in decimal digits, without sign or leading zeros", name)
}

// queryLimit reads the optional query parameter limit, def when absent;
// 400 VALIDATION_ERROR unless it is canonical (as queryID) and 1 to most.
func queryLimit(q *request, def, most int) (int, error) {
	n, err := queryID(q, "limit")
	if err != nil || n > int64(most) {
		return 0, validation("limit must be 1 to %d", most)
	}
	if n == 0 {
		return def, nil
	}
	return int(n), nil
}

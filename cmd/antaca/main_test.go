package main

import (
	"testing"

	"github.com/antaca/antaca/ledger/ledgertest"
)

// TestMain stops the throwaway PostgreSQL cluster of the tests when the
// binary ends.
func TestMain(m *testing.M) { ledgertest.Main(m) }

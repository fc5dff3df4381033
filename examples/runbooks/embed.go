// Package runbooks holds example Runbook files; `opspilot up --demo`
// applies BillingErrors.
package runbooks

import _ "embed"

// BillingErrors is billing-errors.yaml: the demo billing service's
// runbook for BillingErrorRatioHigh.
//
//go:embed billing-errors.yaml
var BillingErrors []byte

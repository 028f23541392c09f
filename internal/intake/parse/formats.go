package parse

import "fmt"

// Func parses one request body into alerts.
type Func func(body []byte) ([]Alert, error)

// formats maps a format name (as configured per detector) to its parser.
var formats = map[string]Func{
	SourceAlertmanager: ParseAlertmanager,
	SourceFalco:        ParseFalco,
	SourceWazuh:        ParseWazuh,
	SourceGeneric:      ParseGeneric,
}

// ForFormat returns the parser of a format: alertmanager, falco, wazuh or
// generic.
func ForFormat(format string) (Func, error) {
	f, ok := formats[format]
	if !ok {
		return nil, fmt.Errorf("parse: unknown alert format %q", format)
	}
	return f, nil
}

package parse

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
)

// Byte budgets. Every alert an intake accepts becomes a spool record and
// then part of a Temporal payload (a signal, the incident's start input,
// its status and its continue-as-new carry), which the Temporal server
// refuses above its blob size limit (2 MB by default). The budgets are
// measured on the encoded form: the length of the value written as JSON
// without HTML escaping (see [EncodedLen]), which is how the spool and the
// platform's data converter write it.
const (
	// DefaultMaxAlertBytes bounds one alert's encoded spool record.
	DefaultMaxAlertBytes = 64 << 10
	// DefaultMaxLabelsBytes bounds an alert's labels, encoded as one JSON object.
	DefaultMaxLabelsBytes = 48 << 10
	// DefaultMaxLabelBytes bounds one label: its encoded name and value.
	DefaultMaxLabelBytes = 8 << 10
	// DefaultMaxSummaryBytes bounds the encoded summary (the parsers keep
	// its first line, at most 512 bytes of text).
	DefaultMaxSummaryBytes = 4 << 10
	// DefaultMaxFieldBytes bounds each of rule and fingerprint, encoded.
	DefaultMaxFieldBytes = 1 << 10
)

// Budget bounds, in bytes of the encoded form, what one alert may carry
// after normalisation. A zero field takes its default. The intake
// configuration may set it (key "budget").
type Budget struct {
	// MaxAlertBytes bounds the alert's whole encoded spool record (checked
	// by the intake, which builds the record).
	MaxAlertBytes int `yaml:"max_alert_bytes"`
	// MaxLabelsBytes bounds all labels together.
	MaxLabelsBytes int `yaml:"max_labels_bytes"`
	// MaxLabelBytes bounds one label (name and value).
	MaxLabelBytes int `yaml:"max_label_bytes"`
	// MaxSummaryBytes bounds the summary.
	MaxSummaryBytes int `yaml:"max_summary_bytes"`
	// MaxFieldBytes bounds the rule and the fingerprint, each.
	MaxFieldBytes int `yaml:"max_field_bytes"`
}

// DefaultBudget is the budget with every default.
func DefaultBudget() Budget { return Budget{}.WithDefaults() }

// WithDefaults returns b with zero fields set to their defaults.
func (b Budget) WithDefaults() Budget {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&b.MaxAlertBytes, DefaultMaxAlertBytes)
	def(&b.MaxLabelsBytes, DefaultMaxLabelsBytes)
	def(&b.MaxLabelBytes, DefaultMaxLabelBytes)
	def(&b.MaxSummaryBytes, DefaultMaxSummaryBytes)
	def(&b.MaxFieldBytes, DefaultMaxFieldBytes)
	return b
}

// MaxBudgetAlertBytes is the largest MaxAlertBytes a configuration may set:
// a start carries an alert twice (input and signal), and the workflow's
// state and payloads stay far below the server's 2 MB blob limit.
const MaxBudgetAlertBytes = 96 << 10

// Validate checks a budget after defaults: every part fits in the whole
// and the whole stays below [MaxBudgetAlertBytes].
func (b Budget) Validate() error {
	b = b.WithDefaults()
	var errs []error
	if b.MaxAlertBytes > MaxBudgetAlertBytes {
		errs = append(errs, fmt.Errorf("budget.max_alert_bytes %d: at most %d", b.MaxAlertBytes, MaxBudgetAlertBytes))
	}
	for _, p := range []struct {
		name string
		v    int
	}{{"max_labels_bytes", b.MaxLabelsBytes}, {"max_label_bytes", b.MaxLabelBytes}, {"max_summary_bytes", b.MaxSummaryBytes}, {"max_field_bytes", b.MaxFieldBytes}} {
		if p.v > b.MaxAlertBytes {
			errs = append(errs, fmt.Errorf("budget.%s %d: larger than max_alert_bytes %d", p.name, p.v, b.MaxAlertBytes))
		}
	}
	if b.MaxLabelBytes > b.MaxLabelsBytes {
		errs = append(errs, fmt.Errorf("budget.max_label_bytes %d: larger than max_labels_bytes %d", b.MaxLabelBytes, b.MaxLabelsBytes))
	}
	return errors.Join(errs...)
}

// BudgetError is an alert over a byte budget. The intake answers it with
// 413 and the alert is not accepted (nor any other alert of the request).
type BudgetError struct {
	// Field is the JSON path of what is too large ("[2].labels.msg").
	Field string `json:"field,omitempty"`
	// Msg says what is too large, by how much.
	Msg string `json:"error"`
	// Size and Limit are the encoded size and the budget, in bytes.
	Size  int `json:"size_bytes"`
	Limit int `json:"limit_bytes"`
}

// Error implements error.
func (e *BudgetError) Error() string {
	if e.Field == "" {
		return e.Msg
	}
	return e.Field + ": " + e.Msg
}

func overBudget(field, what string, size, limit int) *BudgetError {
	return &BudgetError{Field: field, Size: size, Limit: limit,
		Msg: fmt.Sprintf("%s is %d bytes encoded, over its budget of %d bytes", what, size, limit)}
}

// Check returns a [*BudgetError] when a (the alert at JSON path field of
// the request) is over a part of the budget; the whole record is checked
// by [Budget.CheckRecord] once the intake built it.
func (b Budget) Check(a *Alert, field string) error {
	b = b.WithDefaults()
	for _, f := range []struct{ name, v string }{{"rule", a.Rule}, {"fingerprint", a.Fingerprint}} {
		if n := EncodedLen(f.v); n > b.MaxFieldBytes {
			return overBudget(join(field, f.name), f.name, n, b.MaxFieldBytes)
		}
	}
	if n := EncodedLen(a.Summary); n > b.MaxSummaryBytes {
		return overBudget(join(field, "summary"), "the summary", n, b.MaxSummaryBytes)
	}
	total := 2 // {}
	keys := make([]string, 0, len(a.Labels))
	for k := range a.Labels {
		keys = append(keys, k)
	}
	slices.Sort(keys) // the error names the same label every time
	for _, k := range keys {
		n := EncodedLen(k) + 1 + EncodedLen(a.Labels[k])
		if n > b.MaxLabelBytes {
			return overBudget(join(field, "labels."+k), "label "+strconv.Quote(truncate(k, 64)), n, b.MaxLabelBytes)
		}
		total += n + 1
	}
	if len(keys) > 0 {
		total-- // no comma after the last
	}
	if total > b.MaxLabelsBytes {
		return overBudget(join(field, "labels"), "the labels", total, b.MaxLabelsBytes)
	}
	return nil
}

// CheckRecord returns a [*BudgetError] when an alert's encoded record
// (size bytes) is over MaxAlertBytes.
func (b Budget) CheckRecord(size int, field string) error {
	b = b.WithDefaults()
	if size > b.MaxAlertBytes {
		return overBudget(field, "the alert", size, b.MaxAlertBytes)
	}
	return nil
}

// Checked returns a parser that runs f and then checks every alert
// against b; the request is refused whole when one alert is over.
func Checked(f Func, b Budget) Func {
	return func(body []byte) ([]Alert, error) {
		alerts, err := f(body)
		if err != nil {
			return nil, err
		}
		for i := range alerts {
			field := ""
			if len(alerts) > 1 {
				field = index("alerts", i)
			}
			if err := b.Check(&alerts[i], field); err != nil {
				return nil, err
			}
		}
		return alerts, nil
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !isRuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// counter is an io.Writer that only counts.
type counter int

func (c *counter) Write(p []byte) (int, error) { *c += counter(len(p)); return len(p), nil }

// EncodedLen is the length of v written as JSON without HTML escaping
// (json.Encoder with SetEscapeHTML(false), without the trailing newline);
// -1 if v cannot be encoded.
func EncodedLen(v any) int {
	var c counter
	if err := NewEncoder(&c).Encode(v); err != nil {
		return -1
	}
	return int(c) - 1
}

// NewEncoder returns a JSON encoder that does not escape <, > and & (which
// json.Marshal writes as six-byte \u003c escapes, so hostile text grows
// six-fold). The output is only ever read as JSON, never embedded in HTML.
func NewEncoder(w io.Writer) *json.Encoder {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return enc
}

// Marshal is json.Marshal without HTML escaping (see [NewEncoder]).
func Marshal(v any) ([]byte, error) {
	var buf bytesBuffer
	if err := NewEncoder(&buf).Encode(v); err != nil {
		return nil, err
	}
	return buf[:len(buf)-1], nil
}

type bytesBuffer []byte

func (b *bytesBuffer) Write(p []byte) (int, error) { *b = append(*b, p...); return len(p), nil }

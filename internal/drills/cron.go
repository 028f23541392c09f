package drills

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// cronField is one field of a cron expression.
type cronField struct {
	name   string
	lo, hi int
	names  []string // names for lo, lo+1, … (months, weekdays)
	any    bool     // ? allowed
}

var cronFields = []cronField{
	{name: "minute", lo: 0, hi: 59},
	{name: "hour", lo: 0, hi: 23},
	{name: "day of month", lo: 1, hi: 31, any: true},
	{name: "month", lo: 1, hi: 12, names: []string{"JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"}},
	{name: "day of week", lo: 0, hi: 7, names: []string{"SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"}, any: true},
}

var cronDescriptors = []string{"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}

// CheckCron checks a cron expression the way Temporal Schedules read it:
// five fields (minute hour day-of-month month day-of-week) of *, values,
// ranges (a-b), steps (*/n, a-b/n) and lists (a,b), with month and weekday
// names; or one of @yearly, @annually, @monthly, @weekly, @daily,
// @midnight, @hourly. The server checks again when the schedule is made;
// this catches mistakes with a line number first.
func CheckCron(expr string) error {
	expr = strings.TrimSpace(expr)
	if strings.HasPrefix(expr, "@") {
		for _, d := range cronDescriptors {
			if strings.EqualFold(expr, d) {
				return nil
			}
		}
		return fmt.Errorf("unknown descriptor (want one of %s)", strings.Join(cronDescriptors, ", "))
	}
	fields := strings.Fields(expr)
	if len(fields) != len(cronFields) {
		return fmt.Errorf("%d fields, want 5: minute hour day-of-month month day-of-week", len(fields))
	}
	for i, f := range fields {
		if err := cronFields[i].check(f); err != nil {
			return fmt.Errorf("%s field %q: %w", cronFields[i].name, f, err)
		}
	}
	return nil
}

func (c cronField) check(f string) error {
	if c.any && f == "?" {
		return nil
	}
	for item := range strings.SplitSeq(f, ",") {
		if item == "" {
			return errors.New("empty list item")
		}
		rng, step, hasStep := strings.Cut(item, "/")
		if hasStep {
			n, err := strconv.Atoi(step)
			if err != nil || n < 1 || n > c.hi-c.lo+1 {
				return fmt.Errorf("step %q: want 1 to %d", step, c.hi-c.lo+1)
			}
		}
		if rng == "*" {
			continue
		}
		a, b, isRange := strings.Cut(rng, "-")
		lo, err := c.value(a)
		if err != nil {
			return err
		}
		if !isRange {
			continue
		}
		hi, err := c.value(b)
		if err != nil {
			return err
		}
		if hi < lo {
			return fmt.Errorf("range %s is backwards", rng)
		}
	}
	return nil
}

func (c cronField) value(s string) (int, error) {
	for i, n := range c.names {
		if strings.EqualFold(s, n) {
			return c.lo + i, nil
		}
	}
	v, err := strconv.Atoi(s)
	if err != nil || v < c.lo || v > c.hi {
		return 0, fmt.Errorf("%q is not a value from %d to %d", s, c.lo, c.hi)
	}
	return v, nil
}

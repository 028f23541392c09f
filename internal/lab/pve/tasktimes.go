package pve

import (
	"encoding/json"
	"fmt"
	"maps"
	"time"
)

// TaskTimes are how long the simulator's tasks run. A duration of
// [InstantTasks] makes a task finish before the call that started it
// returns. A change applies to tasks started after it.
type TaskTimes struct {
	// Default is the duration of every task type not in ByType.
	Default time.Duration
	// ByType overrides Default per task type ("vzsnapshot", "vzdump", ...).
	ByType map[string]time.Duration
}

// taskTimesJSON is the JSON form of TaskTimes: durations as Go duration
// strings ("2s", "150ms") or "instant".
type taskTimesJSON struct {
	Default string            `json:"default"`
	ByType  map[string]string `json:"by_type,omitempty"`
}

func formatTaskDuration(d time.Duration) string {
	if d < 0 {
		return "instant"
	}
	return d.String()
}

func parseTaskDuration(s string) (time.Duration, error) {
	if s == "instant" {
		return InstantTasks, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("task duration %q: %w", s, err)
	}
	if d < 0 {
		return 0, fmt.Errorf("task duration %q: negative (use \"instant\")", s)
	}
	return d, nil
}

// MarshalJSON renders durations as strings ("2s", "instant").
func (t TaskTimes) MarshalJSON() ([]byte, error) {
	j := taskTimesJSON{Default: formatTaskDuration(t.Default)}
	if len(t.ByType) > 0 {
		j.ByType = make(map[string]string, len(t.ByType))
		for typ, d := range t.ByType {
			j.ByType[typ] = formatTaskDuration(d)
		}
	}
	return json.Marshal(j)
}

// UnmarshalJSON accepts durations as strings; an empty default means
// [DefaultTaskDuration].
func (t *TaskTimes) UnmarshalJSON(b []byte) error {
	var j taskTimesJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return fmt.Errorf("decode task times: %w", err)
	}
	out := TaskTimes{Default: DefaultTaskDuration, ByType: make(map[string]time.Duration, len(j.ByType))}
	if j.Default != "" {
		d, err := parseTaskDuration(j.Default)
		if err != nil {
			return fmt.Errorf("decode task times: default: %w", err)
		}
		out.Default = d
	}
	for typ, s := range j.ByType {
		if typ == "" {
			return fmt.Errorf("decode task times: empty task type")
		}
		d, err := parseTaskDuration(s)
		if err != nil {
			return fmt.Errorf("decode task times: %s: %w", typ, err)
		}
		out.ByType[typ] = d
	}
	*t = out
	return nil
}

// SetTaskTimes replaces the task durations for tasks started from now on;
// a zero Default means [DefaultTaskDuration].
func (s *Server) SetTaskTimes(t TaskTimes) {
	if t.Default == 0 {
		t.Default = DefaultTaskDuration
	}
	t.ByType = maps.Clone(t.ByType)
	s.taskTimesMu.Lock()
	defer s.taskTimesMu.Unlock()
	s.taskTimes = t
}

// TaskTimes returns the current task durations.
func (s *Server) TaskTimes() TaskTimes {
	s.taskTimesMu.Lock()
	defer s.taskTimesMu.Unlock()
	return TaskTimes{Default: s.taskTimes.Default, ByType: maps.Clone(s.taskTimes.ByType)}
}

func (s *Server) taskDuration(typ string) time.Duration {
	s.taskTimesMu.Lock()
	defer s.taskTimesMu.Unlock()
	if d, ok := s.taskTimes.ByType[typ]; ok {
		return d
	}
	return s.taskTimes.Default
}

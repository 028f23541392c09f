package keycloak

import (
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Event is a stored user event, shaped like Keycloak's EventRepresentation.
type Event struct {
	Time      int64             `json:"time"`
	Type      string            `json:"type"`
	RealmID   string            `json:"realmId"`
	ClientID  string            `json:"clientId,omitempty"`
	UserID    string            `json:"userId,omitempty"`
	SessionID string            `json:"sessionId,omitempty"`
	IPAddress string            `json:"ipAddress,omitempty"`
	Error     string            `json:"error,omitempty"`
	Details   map[string]string `json:"details,omitempty"`
}

// AuthDetails identifies who made an admin call (Keycloak's AuthDetailsRepresentation).
type AuthDetails struct {
	RealmID   string `json:"realmId"`
	ClientID  string `json:"clientId"`
	UserID    string `json:"userId"`
	IPAddress string `json:"ipAddress"`
}

// AdminEvent is a stored admin event, shaped like Keycloak's AdminEventRepresentation.
type AdminEvent struct {
	Time           int64       `json:"time"`
	RealmID        string      `json:"realmId"`
	AuthDetails    AuthDetails `json:"authDetails"`
	OperationType  string      `json:"operationType"`
	ResourceType   string      `json:"resourceType"`
	ResourcePath   string      `json:"resourcePath"`
	Representation string      `json:"representation,omitempty"`
	Error          string      `json:"error,omitempty"`
}

// maxStoredEvents bounds each realm's event store.
const maxStoredEvents = 10000

// notSavedByDefault are the event types Keycloak 23 does not store unless the realm lists them in
// enabledEventTypes (EventType.saveByDefault == false) — the ones the simulator emits.
var notSavedByDefault = map[string]bool{
	"REFRESH_TOKEN": true, "REFRESH_TOKEN_ERROR": true,
	"INTROSPECT_TOKEN": true, "INTROSPECT_TOKEN_ERROR": true,
	"USER_INFO_REQUEST": true, "USER_INFO_REQUEST_ERROR": true,
}

// addEvent stores a user event if the realm saves events of that type. Caller holds s.mu.
func (r *realm) addEvent(now time.Time, e Event) {
	if !r.eventsEnabled {
		return
	}
	if len(r.enabledEventTypes) > 0 {
		if !slices.Contains(r.enabledEventTypes, e.Type) {
			return
		}
	} else if notSavedByDefault[e.Type] {
		return
	}
	e.Time = now.UnixMilli()
	e.RealmID = r.id
	r.events = append(r.events, e)
	if len(r.events) > maxStoredEvents {
		r.events = r.events[len(r.events)-maxStoredEvents:]
	}
}

// addAdminEvent stores an admin event if the realm saves them. Caller holds s.mu.
func (r *realm) addAdminEvent(now time.Time, e AdminEvent) {
	if !r.adminEventsEnabled {
		return
	}
	if !r.adminEventsDetails {
		e.Representation = ""
	}
	e.Time = now.UnixMilli()
	e.RealmID = r.id
	r.adminEvents = append(r.adminEvents, e)
	if len(r.adminEvents) > maxStoredEvents {
		r.adminEvents = r.adminEvents[len(r.adminEvents)-maxStoredEvents:]
	}
}

// parseDateBound reads Keycloak's dateFrom/dateTo: "yyyy-MM-dd" (UTC day; dateTo includes the
// whole day) or epoch milliseconds.
func parseDateBound(v string, end bool) (int64, bool) {
	if v == "" {
		return 0, false
	}
	if ms, err := strconv.ParseInt(v, 10, 64); err == nil {
		return ms, true
	}
	t, err := time.Parse("2006-01-02", v)
	if err != nil {
		return 0, false
	}
	if end {
		return t.Add(24*time.Hour).UnixMilli() - 1, true
	}
	return t.UnixMilli(), true
}

// pageBounds reads first/max with Keycloak's defaults (0 and 100).
func pageBounds(q map[string][]string, defMax int) (int, int) {
	first, max := 0, defMax
	if v := firstValue(q, "first"); v != "" {
		if n, err := strconv.Atoi(v); err == nil && n >= 0 {
			first = n
		}
	}
	if v := firstValue(q, "max"); v != "" {
		if n, err := strconv.Atoi(v); err == nil && n >= 0 {
			max = n
		}
	}
	return first, max
}

func page[T any](items []T, first, max int) []T {
	if first >= len(items) {
		return []T{}
	}
	items = items[first:]
	if max >= 0 && max < len(items) {
		items = items[:max]
	}
	return items
}

func firstValue(q map[string][]string, key string) string {
	if v := q[key]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// multiValue returns repeated and comma-separated values of key.
func multiValue(q map[string][]string, key string) []string {
	var out []string
	for _, v := range q[key] {
		for _, p := range strings.Split(v, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
	}
	return out
}

// handleEvents serves GET /admin/realms/{realm}/events (newest first).
func (s *Server) handleEvents(w http.ResponseWriter, req *http.Request, a *adminCall) {
	q := req.URL.Query()
	types := multiValue(q, "type")
	clientID, userID, ip := firstValue(q, "client"), firstValue(q, "user"), firstValue(q, "ipAddress")
	from, hasFrom := parseDateBound(firstValue(q, "dateFrom"), false)
	to, hasTo := parseDateBound(firstValue(q, "dateTo"), true)
	first, max := pageBounds(q, 100)
	var out []Event
	for i := len(a.realm.events) - 1; i >= 0; i-- {
		e := a.realm.events[i]
		if len(types) > 0 && !slices.Contains(types, e.Type) ||
			clientID != "" && e.ClientID != clientID ||
			userID != "" && e.UserID != userID ||
			ip != "" && e.IPAddress != ip ||
			hasFrom && e.Time < from || hasTo && e.Time > to {
			continue
		}
		out = append(out, e)
	}
	writeJSON(w, http.StatusOK, page(nonNil(out), first, max))
}

// handleAdminEvents serves GET /admin/realms/{realm}/admin-events (newest first).
func (s *Server) handleAdminEvents(w http.ResponseWriter, req *http.Request, a *adminCall) {
	q := req.URL.Query()
	ops, resTypes := multiValue(q, "operationTypes"), multiValue(q, "resourceTypes")
	authRealm, authClient := firstValue(q, "authRealm"), firstValue(q, "authClient")
	authUser, authIP := firstValue(q, "authUser"), firstValue(q, "authIpAddress")
	resourcePath := firstValue(q, "resourcePath")
	from, hasFrom := parseDateBound(firstValue(q, "dateFrom"), false)
	to, hasTo := parseDateBound(firstValue(q, "dateTo"), true)
	first, max := pageBounds(q, 100)
	var out []AdminEvent
	for i := len(a.realm.adminEvents) - 1; i >= 0; i-- {
		e := a.realm.adminEvents[i]
		if len(ops) > 0 && !slices.Contains(ops, e.OperationType) ||
			len(resTypes) > 0 && !slices.Contains(resTypes, e.ResourceType) ||
			authRealm != "" && e.AuthDetails.RealmID != authRealm ||
			authClient != "" && e.AuthDetails.ClientID != authClient ||
			authUser != "" && e.AuthDetails.UserID != authUser ||
			authIP != "" && e.AuthDetails.IPAddress != authIP ||
			resourcePath != "" && !wildcardMatch(resourcePath, e.ResourcePath) ||
			hasFrom && e.Time < from || hasTo && e.Time > to {
			continue
		}
		out = append(out, e)
	}
	writeJSON(w, http.StatusOK, page(nonNil(out), first, max))
}

// wildcardMatch matches Keycloak's resourcePath filter, where '*' stands for any text.
func wildcardMatch(pattern, s string) bool {
	parts := strings.Split(pattern, "*")
	if len(parts) == 1 {
		return pattern == s
	}
	if !strings.HasPrefix(s, parts[0]) {
		return false
	}
	s = s[len(parts[0]):]
	for i, p := range parts[1:] {
		if i == len(parts)-2 {
			return strings.HasSuffix(s, p)
		}
		idx := strings.Index(s, p)
		if idx < 0 {
			return false
		}
		s = s[idx+len(p):]
	}
	return true
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

package pve

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

const apiPrefix = "/api2/json"

// request is one parsed API call handed to a handler.
type request struct {
	method   string
	path     string // API path relative to /api2/json, as decoded
	template string // matching schema path
	params   map[string]string
	auth     *principal
	http     *http.Request
	faults   []*activeFault
}

// apiError is an error answer: HTTP status, message and parameter errors.
type apiError struct {
	status int
	msg    string
	errors map[string]string
}

func (e *apiError) Error() string { return e.msg }

// errf is a runtime die() in PVE: HTTP 500 with the message.
func errf(format string, args ...any) *apiError {
	return &apiError{status: http.StatusInternalServerError, msg: fmt.Sprintf(format, args...)}
}

// paramErr is PVE's raise_param_exc: HTTP 400 with per-parameter errors.
func paramErr(errs map[string]string) *apiError {
	return &apiError{status: http.StatusBadRequest, msg: "Parameter verification failed.", errors: errs}
}

// result is a success answer: the value of "data" and extra top-level keys.
type result struct {
	data  any
	extra map[string]any
}

type handlerFunc func(s *Server, r *request) (result, *apiError)

// Handler returns the HTTP handler of the simulator (API and /_lab control).
func (s *Server) Handler() http.Handler {
	return http.HandlerFunc(s.serveHTTP)
}

func (s *Server) serveHTTP(w http.ResponseWriter, hr *http.Request) {
	path := hr.URL.Path
	if path == "/_lab" || strings.HasPrefix(path, "/_lab/") {
		s.serveControl(w, hr)
		return
	}
	if path != apiPrefix && !strings.HasPrefix(path, apiPrefix+"/") {
		writeError(w, hr, &apiError{status: http.StatusNotImplemented, msg: fmt.Sprintf("Method '%s %s' not implemented", hr.Method, path)})
		return
	}
	apiPath := strings.TrimPrefix(path, apiPrefix)
	if apiPath == "" {
		apiPath = "/"
	}
	res, aerr := s.dispatch(hr, apiPath)
	if aerr != nil {
		writeError(w, hr, aerr)
		return
	}
	body := map[string]any{"data": res.data}
	for k, v := range res.extra {
		body[k] = v
	}
	b, err := json.Marshal(body)
	if err != nil {
		writeError(w, hr, errf("unable to encode result: %v", err))
		return
	}
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.Header().Set("Cache-Control", "max-age=0")
	w.Header().Set("Pragma", "no-cache")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b)
}

// dispatch runs the PVE request pipeline: route lookup, faults, auth, CSRF,
// permissions, parameter parsing and verification, handler.
func (s *Server) dispatch(hr *http.Request, apiPath string) (result, *apiError) {
	method := hr.Method
	if method == http.MethodHead {
		method = http.MethodGet
	}
	display := "/" + strings.Join(splitPath(apiPath), "/")
	notImpl := &apiError{status: http.StatusNotImplemented, msg: fmt.Sprintf("Method '%s %s' not implemented", method, display)}
	tmpl, pathParams, ok := s.schema.match(apiPath)
	s.calls.add(method, tmpl)
	if !ok {
		return result{}, notImpl
	}
	mi, ok := s.schema.byPath[tmpl][method]
	if !ok {
		return result{}, notImpl
	}

	faults := s.matchFaults(method, tmpl, display)
	if aerr := s.applyFaults(hr, faults); aerr != nil {
		return result{}, aerr
	}

	if (method == http.MethodGet || method == http.MethodDelete) && hr.ContentLength > 0 {
		return result{}, &apiError{status: http.StatusNotImplemented, msg: fmt.Sprintf("Unexpected content for method '%s'", method)}
	}

	var auth *principal
	world := mi.Permissions != nil && mi.Permissions.User == "world"
	if !world {
		var aerr *apiError
		auth, aerr = s.authenticate(hr)
		if aerr != nil {
			if s.opts.AuthFailureDelay > 0 {
				select {
				case <-time.After(s.opts.AuthFailureDelay):
				case <-hr.Context().Done():
				}
			}
			return result{}, aerr
		}
		if auth.ticket && method != http.MethodGet && !s.checkCSRF(hr, auth) {
			return result{}, &apiError{status: http.StatusUnauthorized, msg: "Permission denied - invalid csrf token"}
		}
	}

	params, aerr := readParams(hr)
	if aerr != nil {
		return result{}, aerr
	}
	for k, v := range pathParams {
		params[k] = v
	}

	if auth != nil {
		if aerr := s.checkPermissions(auth, method, mi, params); aerr != nil {
			return result{}, aerr
		}
	}

	if errs := validateParams(mi, params); len(errs) > 0 {
		return result{}, paramErr(errs)
	}

	h := s.routes[tmpl][method]
	if h == nil {
		return result{}, notImpl
	}
	return h(s, &request{method: method, path: display, template: tmpl, params: params, auth: auth, http: hr, faults: faults})
}

// readParams merges body parameters (JSON or form) with the query string;
// query values win, as in pve-http-server's extract_params. All values are
// normalised to the strings PVE's schema validation works on.
func readParams(hr *http.Request) (map[string]string, *apiError) {
	params := map[string]string{}
	if hr.Body != nil && hr.Method != http.MethodGet && hr.Method != http.MethodDelete {
		raw, err := io.ReadAll(io.LimitReader(hr.Body, 16<<20))
		if err != nil {
			return nil, errf("unable to read request body: %v", err)
		}
		if len(raw) > 0 {
			ct, _, _ := mime.ParseMediaType(hr.Header.Get("Content-Type"))
			switch ct {
			case "application/json":
				var m map[string]any
				dec := json.NewDecoder(strings.NewReader(string(raw)))
				dec.UseNumber()
				if err := dec.Decode(&m); err != nil {
					return nil, &apiError{status: http.StatusBadRequest, msg: fmt.Sprintf("unable to parse JSON body: %v", err), errors: map[string]string{}}
				}
				for k, v := range m {
					sv, ok := jsonScalar(v)
					if !ok {
						return nil, paramErr(map[string]string{k: "type check failed - got a structure"})
					}
					if v == nil {
						continue
					}
					params[k] = sv
				}
			default:
				vals, err := url.ParseQuery(string(raw))
				if err != nil {
					return nil, &apiError{status: http.StatusBadRequest, msg: "unable to parse form body", errors: map[string]string{}}
				}
				for k, v := range vals {
					params[k] = strings.Join(v, "\x00")
				}
			}
		}
	}
	for k, v := range hr.URL.Query() {
		params[k] = strings.Join(v, "\x00")
	}
	return params, nil
}

// jsonScalar converts a JSON value to the string PVE would see.
func jsonScalar(v any) (string, bool) {
	switch x := v.(type) {
	case nil:
		return "", true
	case string:
		return x, true
	case bool:
		if x {
			return "1", true
		}
		return "0", true
	case json.Number:
		return x.String(), true
	case []any:
		parts := make([]string, 0, len(x))
		for _, e := range x {
			s, ok := jsonScalar(e)
			if !ok {
				return "", false
			}
			parts = append(parts, s)
		}
		return strings.Join(parts, "\x00"), true
	}
	return "", false
}

// writeError writes a PVE error: the message becomes the HTTP reason phrase
// (as pveproxy does) and the body {"data":null,"message":...,"errors":...}.
func writeError(w http.ResponseWriter, hr *http.Request, e *apiError) {
	msg := strings.TrimRight(e.msg, "\n")
	body := map[string]any{"data": nil, "message": msg + "\n"}
	if e.errors != nil {
		errs := map[string]string{}
		for k, v := range e.errors {
			errs[k] = v
		}
		body["errors"] = errs
	}
	b, _ := json.Marshal(body)
	reason := strings.SplitN(msg, "\n", 2)[0]
	reason = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, reason)
	if e.status == http.StatusUnauthorized && reason == "" {
		reason = "No ticket"
	}
	if writeWithReason(w, hr, e.status, reason, b) {
		return
	}
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(e.status)
	_, _ = w.Write(b)
}

// writeWithReason writes a raw HTTP/1.1 response with a custom reason
// phrase by hijacking the connection; it reports false when the connection
// cannot be hijacked (HTTP/2, recorders), and the caller falls back.
func writeWithReason(w http.ResponseWriter, hr *http.Request, status int, reason string, body []byte) bool {
	if reason == "" || hr.ProtoMajor != 1 {
		return false
	}
	hj, ok := w.(http.Hijacker)
	if !ok {
		return false
	}
	conn, brw, err := hj.Hijack()
	if err != nil {
		return false
	}
	defer func() { _ = conn.Close() }()
	var b strings.Builder
	fmt.Fprintf(&b, "HTTP/1.1 %d %s\r\n", status, reason)
	hdr := http.Header{}
	hdr.Set("Content-Type", "application/json;charset=UTF-8")
	hdr.Set("Content-Length", strconv.Itoa(len(body)))
	hdr.Set("Connection", "close")
	hdr.Set("Date", time.Now().UTC().Format(http.TimeFormat))
	hdr.Set("Server", "pve-api-daemon/3.0")
	keys := make([]string, 0, len(hdr))
	for k := range hdr {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, "%s: %s\r\n", k, hdr.Get(k))
	}
	b.WriteString("\r\n")
	wr := bufio.NewWriter(conn)
	_, _ = wr.WriteString(b.String())
	if hr.Method != http.MethodHead {
		_, _ = wr.Write(body)
	}
	_ = wr.Flush()
	_ = brw
	return true
}

// Package config loads the typed configuration of the IRU Responder binaries.
//
// Every setting comes from an environment variable. Variables may also be
// given in an env file (KEY=VALUE lines) named by IRU_ENV_FILE; the real
// environment wins over the file. A secret may be given as a path in the
// variable's name with a _FILE suffix (IRU_TEMPORAL_API_KEY_FILE), the way
// container secrets are mounted. Values are validated at start, and errors
// name the variable and what is wrong with it. Secrets never appear in
// [Describe] or in errors.
package config

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"reflect"
	"sort"
	"strings"

	"github.com/caarlos0/env/v11"
	"github.com/joho/godotenv"

	"github.com/iru-responder/responder/internal/redact"
)

// EnvFileVar names the variable that points at an optional env file.
const EnvFileVar = "IRU_ENV_FILE"

// Validator is implemented by configuration structs that check their own
// values after parsing.
type Validator interface {
	Validate() error
}

// Load fills cfg (a pointer to a struct with env tags) from the process
// environment and the optional env file, then validates it.
func Load(cfg any) error {
	return LoadFrom(cfg, os.Environ())
}

// LoadFrom is [Load] with an explicit environment ("KEY=VALUE" strings).
func LoadFrom(cfg any, environ []string) error {
	vars := env.ToMap(environ)
	if path := vars[EnvFileVar]; path != "" {
		fileVars, err := godotenv.Read(path)
		if err != nil {
			return fmt.Errorf("config: %s=%s: %w", EnvFileVar, path, err)
		}
		for k, v := range fileVars {
			if _, set := vars[k]; !set {
				vars[k] = v
			}
		}
	}
	fields, err := Describe(cfg)
	if err != nil {
		return err
	}
	for _, f := range fields {
		if !f.Secret {
			continue
		}
		fileVar := f.Name + "_FILE"
		path, ok := vars[fileVar]
		if !ok || vars[f.Name] != "" {
			continue
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("config: %s: cannot read secret file: %w", fileVar, err)
		}
		vars[f.Name] = strings.TrimRight(string(b), "\r\n")
	}
	if err := env.ParseWithOptions(cfg, env.Options{Environment: vars}); err != nil {
		return fmt.Errorf("config: %w", explainParseError(cfg, err, fields))
	}
	if v, ok := cfg.(Validator); ok {
		if err := v.Validate(); err != nil {
			return fmt.Errorf("config: %w", err)
		}
	}
	return nil
}

// explainParseError rewrites the env library's errors (which name Go struct
// fields) to name the variable, and keeps secret values out of them.
func explainParseError(cfg any, err error, fields []Field) error {
	var agg env.AggregateError
	if !errors.As(err, &agg) {
		return err
	}
	byField := map[string]string{} // Go field name -> variable
	meta := map[string]reflect.StructField{}
	collectTags(reflect.TypeOf(cfg), meta)
	for name, sf := range meta {
		byField[sf.Name+"/"+sf.Type.String()] = name
	}
	secret := map[string]bool{}
	for _, f := range fields {
		secret[f.Name] = f.Secret
	}
	var out []error
	for _, e := range agg.Errors {
		var pe env.ParseError
		if !errors.As(e, &pe) {
			out = append(out, e)
			continue
		}
		name, ok := byField[pe.Name+"/"+pe.Type.String()]
		switch {
		case !ok:
			out = append(out, e)
		case secret[name]:
			out = append(out, fmt.Errorf("%s: invalid value (secret, not shown)", name))
		default:
			out = append(out, fmt.Errorf("%s: want a %s: %w", name, pe.Type, pe.Err))
		}
	}
	return errors.Join(out...)
}

// Field describes one configuration variable.
type Field struct {
	Name     string // environment variable
	Default  string // default value, "" if none
	Required bool
	Secret   bool   // never printed
	Doc      string // what it means
}

// Describe lists the variables of cfg (a pointer to a config struct) in
// declaration order, with their defaults and docs.
func Describe(cfg any) ([]Field, error) {
	params, err := env.GetFieldParams(cfg)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	meta := map[string]reflect.StructField{}
	collectTags(reflect.TypeOf(cfg), meta)
	out := make([]Field, 0, len(params))
	for _, p := range params {
		sf := meta[p.Key]
		out = append(out, Field{
			Name:     p.Key,
			Default:  p.DefaultValue,
			Required: p.Required,
			Secret:   sf.Tag.Get("secret") == "true",
			Doc:      sf.Tag.Get("doc"),
		})
	}
	return out, nil
}

func collectTags(t reflect.Type, into map[string]reflect.StructField) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return
	}
	for i := range t.NumField() {
		sf := t.Field(i)
		if name, _, _ := strings.Cut(sf.Tag.Get("env"), ","); name != "" {
			into[name] = sf
			continue
		}
		collectTags(sf.Type, into)
	}
}

// Redacted returns "NAME=value" lines for cfg's variables as loaded, with
// secrets replaced by "(set)" or "(unset)" and the credentials of URLs in
// other values redacted (package redact). It is what the binaries log at
// start.
func Redacted(cfg any) []string {
	fields, err := Describe(cfg)
	if err != nil {
		return nil
	}
	values := map[string]string{}
	collectValues(reflect.ValueOf(cfg), values)
	out := make([]string, 0, len(fields))
	for _, f := range fields {
		v := values[f.Name]
		switch {
		case f.Secret && v == "":
			v = "(unset)"
		case f.Secret:
			v = "(set)"
		default:
			// A URL that is not declared secret may still carry a
			// credential (user information, a token in its path or query).
			v = redact.String(v)
		}
		out = append(out, f.Name+"="+v)
	}
	sort.Strings(out)
	return out
}

func collectValues(v reflect.Value, into map[string]string) {
	for v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return
		}
		v = v.Elem()
	}
	if v.Kind() != reflect.Struct {
		return
	}
	t := v.Type()
	for i := range t.NumField() {
		sf := t.Field(i)
		if name, _, _ := strings.Cut(sf.Tag.Get("env"), ","); name != "" {
			into[name] = fmt.Sprint(v.Field(i).Interface())
			continue
		}
		collectValues(v.Field(i), into)
	}
}

// errs joins validation problems into one error, or returns nil.
func errs(problems []error) error {
	return errors.Join(problems...)
}

// Digest is a short digest of cfg's redacted variables: the same
// configuration always gives the same digest, a change gives another, and
// no secret enters it. Binaries record it in the audit ledger at start.
func Digest(cfg any) string {
	sum := sha256.Sum256([]byte(strings.Join(Redacted(cfg), "\n")))
	return hex.EncodeToString(sum[:8])
}

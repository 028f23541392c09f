package config

import (
	"fmt"
	"reflect"

	"github.com/caarlos0/env/v11"
)

// FillDefaults sets every zero field of cfg (a pointer to a struct with env
// tags) that has an envDefault tag to that default, so that a
// configuration built in code rather than by [Load] gets the same defaults
// from the same tags. Fields already set are kept (a zero value, such as
// false or 0, reads as not set); nothing is validated.
func FillDefaults(cfg any) error {
	v := reflect.ValueOf(cfg)
	if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
		return fmt.Errorf("config: FillDefaults wants a pointer to a struct, got %T", cfg)
	}
	defaults := reflect.New(v.Elem().Type())
	if err := env.ParseWithOptions(defaults.Interface(), env.Options{Environment: map[string]string{}}); err != nil {
		return fmt.Errorf("config: defaults of %T: %w", cfg, err)
	}
	fillZero(v.Elem(), defaults.Elem())
	return nil
}

func fillZero(dst, def reflect.Value) {
	t := dst.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		d, s := dst.Field(i), def.Field(i)
		if _, ok := f.Tag.Lookup("envDefault"); ok {
			if d.IsZero() {
				d.Set(s)
			}
			continue
		}
		if f.Type.Kind() == reflect.Struct && f.Tag.Get("env") == "" {
			fillZero(d, s)
		}
	}
}

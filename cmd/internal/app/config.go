// Package app is the wiring every binary shares: configuration from the
// environment (with *_FILE secrets, --help generated from the config structs,
// and errors that name the variable), logging, and signal handling. Only
// mains import it; nothing below cmd/ reads the environment.
package app

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"reflect"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/caarlos0/env/v11"
	"github.com/eventmesh/eventmesh/streams"
)

// Version is set at build time with -ldflags "-X .../cmd/internal/app.Version=v1.2.3".
var Version = "dev"

// Var describes one environment variable of a config struct.
type Var struct {
	Name     string
	Default  string
	Desc     string
	Required bool
	Secret   bool // also read from <Name>_FILE, never logged
	field    string
}

// Vars lists the variables of the config struct pointed to by cfg, in field
// order, following nested structs (and their envPrefix).
func Vars(cfg any) []Var {
	return walk(reflect.TypeOf(cfg).Elem(), "")
}

func walk(t reflect.Type, prefix string) []Var {
	var vars []Var
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(f.Tag.Get("env"), ",")
		if f.Type.Kind() == reflect.Struct && name == "" {
			vars = append(vars, walk(f.Type, prefix+f.Tag.Get("envPrefix"))...)
			continue
		}
		if name == "" {
			continue
		}
		vars = append(vars, Var{
			Name:     prefix + name,
			Default:  f.Tag.Get("envDefault"),
			Desc:     f.Tag.Get("desc"),
			Required: strings.Contains(opts, "required") || strings.Contains(opts, "notEmpty"),
			Secret:   f.Tag.Get("secret") == "true",
			field:    f.Name,
		})
	}
	return vars
}

// Validator is a config that checks itself after parsing; its errors name
// the variable.
type Validator interface{ Validate() error }

// Load parses environ (os.Environ() in a main) into a new T. A secret
// variable NAME may come from the file named by NAME_FILE instead (a
// trailing newline is dropped); setting both is an error. A duration takes
// days too (streams.ParseDuration). Every error names the variable.
func Load[T any](environ []string) (T, error) {
	var cfg T
	vars := Vars(&cfg)
	envs := env.ToMap(environ)
	for _, v := range vars {
		if !v.Secret {
			continue
		}
		path, ok := envs[v.Name+"_FILE"]
		if !ok || path == "" {
			continue
		}
		if envs[v.Name] != "" {
			return cfg, fmt.Errorf("%s and %s_FILE are both set: set one", v.Name, v.Name)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return cfg, fmt.Errorf("%s_FILE: %w", v.Name, err)
		}
		envs[v.Name] = strings.TrimRight(string(b), "\r\n")
	}
	cfg, err := env.ParseAsWithOptions[T](env.Options{Environment: envs, FuncMap: parsers})
	if err != nil {
		return cfg, explain(err, vars, envs)
	}
	clearEmpty(reflect.ValueOf(&cfg).Elem(), "", envs)
	if val, ok := any(&cfg).(Validator); ok {
		if err := val.Validate(); err != nil {
			return cfg, err
		}
	}
	return cfg, nil
}

// clearEmpty empties the string fields tagged empty:"off" whose variable
// is set to the empty string: env puts the default in place of an empty
// value, but for an address such as CONSOLE_ADDR empty means off.
func clearEmpty(v reflect.Value, prefix string, envs map[string]string) {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("env"), ",")
		if f.Type.Kind() == reflect.Struct && name == "" {
			clearEmpty(v.Field(i), prefix+f.Tag.Get("envPrefix"), envs)
			continue
		}
		if val, set := envs[prefix+name]; name != "" && set && val == "" && f.Tag.Get("empty") == "off" && f.Type.Kind() == reflect.String {
			v.Field(i).SetString("")
		}
	}
}

// parsers read the types whose syntax is the mesh's own: every duration
// variable takes days ("7d", "1d12h") besides Go's units.
var parsers = map[reflect.Type]env.ParserFunc{
	reflect.TypeFor[time.Duration](): func(v string) (any, error) { return streams.ParseDuration(v) },
}

// explain rewrites env's errors so each names its variable rather than a Go
// field.
func explain(err error, vars []Var, envs map[string]string) error {
	var agg env.AggregateError
	if !errors.As(err, &agg) {
		return err
	}
	msgs := make([]string, 0, len(agg.Errors))
	for _, e := range agg.Errors {
		var (
			pe  env.ParseError
			nse env.VarIsNotSetError
			eve env.EmptyVarError
		)
		switch {
		case errors.As(e, &pe):
			// pe.Name is the Go field, which several variables may share
			// (WEBHOOK_MAX_DELIVER, ARCHIVE_MAX_DELIVER, …): name the ones set.
			var names []string
			for _, v := range vars {
				if _, set := envs[v.Name]; set && v.field == pe.Name {
					names = append(names, v.Name)
				}
			}
			if len(names) > 1 {
				// Several set: the error quotes the bad value.
				var bad []string
				for _, n := range names {
					if strings.Contains(pe.Err.Error(), strconv.Quote(envs[n])) {
						bad = append(bad, n)
					}
				}
				if len(bad) > 0 {
					names = bad
				}
			}
			name := pe.Name
			if len(names) > 0 {
				name = strings.Join(names, " or ")
			}
			msgs = append(msgs, fmt.Sprintf("%s: invalid value: %v", name, pe.Err))
		case errors.As(e, &nse):
			msgs = append(msgs, fmt.Sprintf("%s is required but not set", nse.Key))
		case errors.As(e, &eve):
			msgs = append(msgs, fmt.Sprintf("%s is required but empty", eve.Key))
		default:
			msgs = append(msgs, e.Error())
		}
	}
	return errors.New(strings.Join(msgs, "; "))
}

// PrintHelp writes usage, summary and every variable of cfgs (pointers to
// config structs) with its default and description.
func PrintHelp(w io.Writer, usage, summary string, cfgs ...any) {
	fmt.Fprintf(w, "Usage: %s\n\n%s\n\nConfiguration (environment variables; a secret also from <NAME>_FILE):\n\n", usage, summary)
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "  VARIABLE\tDEFAULT\tDESCRIPTION")
	seen := map[string]bool{}
	for _, cfg := range cfgs {
		for _, v := range Vars(cfg) {
			if seen[v.Name] {
				continue
			}
			seen[v.Name] = true
			def := v.Default
			switch {
			case v.Required:
				def = "(required)"
			case def == "":
				def = "-"
			}
			desc := v.Desc
			if v.Secret {
				desc += " [secret]"
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\n", v.Name, def, desc)
		}
	}
	tw.Flush()
}

// LogConfig configures the process's logger.
type LogConfig struct {
	Level  slog.Level `env:"LOG_LEVEL" envDefault:"info" desc:"log level: debug, info, warn or error"`
	Format string     `env:"LOG_FORMAT" envDefault:"text" desc:"log format: text or json"`
}

// Validate checks LOG_FORMAT.
func (c LogConfig) Validate() error {
	if c.Format != "text" && c.Format != "json" {
		return fmt.Errorf("LOG_FORMAT %q: want text or json", c.Format)
	}
	return nil
}

// Logger returns a logger writing to w.
func (c LogConfig) Logger(w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: c.Level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// HelpRequested reports whether args ask for help.
func HelpRequested(args []string) bool {
	for _, a := range args {
		if a == "-h" || a == "--help" || a == "-help" || a == "help" {
			return true
		}
	}
	return false
}

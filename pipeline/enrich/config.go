package enrich

import (
	"github.com/rs/zerolog"

	"github.com/vigil-sec/vigil/pipeline/config"
)

// OptionsFrom maps the configuration's enrich section to a table's
// options. The streaming normalize stage and `vigil detect` both open
// their tables with it: with other settings detect would give other
// alerts than the stream for the same input.
func OptionsFrom(c config.Enrich, log zerolog.Logger) Options {
	return Options{
		TTL:        c.TTL.D(),
		Refresh:    c.Refresh.D(),
		CacheSize:  c.CacheSize,
		MaxRelated: c.MaxRelated,
		Logger:     log,
	}
}

package kafka

import (
	"fmt"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Logger adapts a zerolog.Logger to kgo.Logger. franz-go has no zerolog
// plugin; this is the whole of one.
//
// franz-go's info level logs every request and rebalance step, which is a
// lot for a pipeline; levels map one to one, so set the zerolog logger's
// level (or wrap it with .Level) to choose. kgo's debug maps to zerolog's
// debug. Every line carries component=kafka.
func Logger(l zerolog.Logger) kgo.Logger {
	return zlog{l: l.With().Str("component", "kafka").Logger()}
}

type zlog struct{ l zerolog.Logger }

// Level tells franz-go the most verbose level worth producing, so it does
// not format messages zerolog would drop.
func (z zlog) Level() kgo.LogLevel {
	lvl := z.l.GetLevel()
	if g := zerolog.GlobalLevel(); g > lvl {
		lvl = g
	}
	switch {
	case lvl <= zerolog.DebugLevel:
		return kgo.LogLevelDebug
	case lvl == zerolog.InfoLevel:
		return kgo.LogLevelInfo
	case lvl == zerolog.WarnLevel:
		return kgo.LogLevelWarn
	case lvl <= zerolog.PanicLevel:
		return kgo.LogLevelError
	}
	return kgo.LogLevelNone
}

func (z zlog) Log(level kgo.LogLevel, msg string, keyvals ...any) {
	var e *zerolog.Event
	switch level {
	case kgo.LogLevelError:
		e = z.l.Error()
	case kgo.LogLevelWarn:
		e = z.l.Warn()
	case kgo.LogLevelInfo:
		e = z.l.Info()
	case kgo.LogLevelDebug:
		e = z.l.Debug()
	default:
		return
	}
	if e == nil { // disabled level
		return
	}
	for i := 0; i < len(keyvals); i += 2 {
		key, ok := keyvals[i].(string)
		if !ok {
			key = fmt.Sprint(keyvals[i])
		}
		if i+1 == len(keyvals) {
			e = e.Interface("!BADKEY", keyvals[i])
			break
		}
		switch v := keyvals[i+1].(type) {
		case error:
			e = e.AnErr(key, v)
		case fmt.Stringer:
			e = e.Stringer(key, v)
		default:
			e = e.Interface(key, v)
		}
	}
	e.Msg(msg)
}

package config

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
)

// EventHubsUser is the SASL PLAIN user name Azure Event Hubs expects when
// the password is a connection string.
const EventHubsUser = "$ConnectionString"

// EventHubsPort is the port of Event Hubs' Kafka endpoint (TLS only).
const EventHubsPort = "9093"

// EventHubs is what Vigil needs from an Event Hubs connection string.
type EventHubs struct {
	// Host is the namespace host, NAMESPACE.servicebus.windows.net (or a
	// sovereign-cloud domain).
	Host string
	// Broker is Host:9093, the Kafka endpoint.
	Broker string
	// KeyName is the shared access policy name (not secret).
	KeyName string
	// EntityPath is the event hub (topic) the string is scoped to, if any.
	EntityPath string
}

// ParseEventHubs parses an Event Hubs connection string of the form
// Endpoint=sb://NAMESPACE.servicebus.windows.net/;SharedAccessKeyName=K;SharedAccessKey=S[;EntityPath=H].
// Errors never include the key.
func ParseEventHubs(conn string) (EventHubs, error) {
	var eh EventHubs
	var endpoint, key string
	for part := range strings.SplitSeq(strings.TrimSpace(conn), ";") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		// The key is base64 and may end in '=': split at the first one.
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			return eh, fmt.Errorf("connection string part %d is not Name=Value", partIndex(conn, part))
		}
		switch strings.ToLower(strings.TrimSpace(k)) {
		case "endpoint":
			endpoint = strings.TrimSpace(v)
		case "sharedaccesskeyname":
			eh.KeyName = strings.TrimSpace(v)
		case "sharedaccesskey":
			key = v
		case "entitypath":
			eh.EntityPath = strings.TrimSpace(v)
		}
	}
	if endpoint == "" {
		return eh, fmt.Errorf("connection string has no Endpoint=sb://NAMESPACE.servicebus.windows.net/; copy the whole string from the portal (Shared access policies)")
	}
	u, err := url.Parse(endpoint)
	if err != nil || u.Scheme != "sb" || u.Hostname() == "" {
		// The endpoint is not echoed: in a mangled string it may run into
		// the key.
		got := ""
		if err == nil && u.Scheme != "" {
			got = fmt.Sprintf(" (scheme %q)", u.Scheme)
		}
		return eh, fmt.Errorf("connection string Endpoint is not sb://NAMESPACE.servicebus.windows.net/%s", got)
	}
	if eh.KeyName == "" || key == "" {
		return eh, fmt.Errorf("connection string lacks SharedAccessKeyName or SharedAccessKey; copy the whole string from the portal")
	}
	eh.Host = strings.ToLower(u.Hostname())
	eh.Broker = eh.Host + ":" + EventHubsPort
	return eh, nil
}

func partIndex(conn, part string) int {
	for i, p := range strings.Split(conn, ";") {
		if strings.TrimSpace(p) == part {
			return i + 1
		}
	}
	return 0
}

// defaultBrokers is what kafka.brokers holds when neither file nor env set it.
var defaultBrokers = Defaults().Kafka.Brokers

// ApplyEventHubs fills in what an Event Hubs connection string implies:
// SASL PLAIN with user $ConnectionString and the string as password, TLS
// on, and the broker NAMESPACE.servicebus.windows.net:9093 when
// kafka.brokers is empty or still the default. Fields already set are
// kept; Validate reports those that contradict the string. It does nothing
// when no connection string is set, and is safe to call twice.
func (k *Kafka) ApplyEventHubs() error {
	if k.EventHubsConnectionString == "" {
		return nil
	}
	eh, err := ParseEventHubs(k.EventHubsConnectionString.Reveal())
	if err != nil {
		return fmt.Errorf("kafka.event_hubs_connection_string: %w", err)
	}
	if k.SASL.Mechanism == "" {
		k.SASL.Mechanism = SASLPlain
	}
	if k.SASL.Username == "" {
		k.SASL.Username = EventHubsUser
	}
	if k.SASL.Password == "" {
		k.SASL.Password = k.EventHubsConnectionString
	}
	k.TLS.Enabled = true
	if len(k.Brokers) == 0 || slices.Equal(k.Brokers, defaultBrokers) {
		k.Brokers = []string{eh.Broker}
	}
	return nil
}

// IsEventHubs reports whether the client talks to Azure Event Hubs: a
// connection string is set or a broker is a servicebus host.
func (k Kafka) IsEventHubs() bool {
	if k.EventHubsConnectionString != "" {
		return true
	}
	for _, b := range k.Brokers {
		h := strings.ToLower(b)
		if i := strings.LastIndexByte(h, ':'); i >= 0 {
			h = h[:i]
		}
		if strings.Contains(h, ".servicebus.") {
			return true
		}
	}
	return false
}

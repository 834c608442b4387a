package kafkatest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/testcontainers/testcontainers-go"
	tckafka "github.com/testcontainers/testcontainers-go/modules/kafka"
)

// errNoDocker says no Docker endpoint exists at all (no DOCKER_HOST, no socket).
var errNoDocker = errors.New("no DOCKER_HOST and no Docker socket")

// dockerEndpoint finds where a Docker engine would listen: DOCKER_HOST, else
// the first socket file among the usual places (root, rootless, Desktop).
// It does not connect; a missing socket file is the fast common "no" answer.
func dockerEndpoint() (network, addr string, err error) {
	if h := os.Getenv("DOCKER_HOST"); h != "" {
		u, err := url.Parse(h)
		if err != nil {
			return "", "", fmt.Errorf("DOCKER_HOST=%q: %w", h, err)
		}
		switch u.Scheme {
		case "unix":
			return "unix", u.Path, nil
		case "tcp":
			return "tcp", u.Host, nil
		default:
			return "", "", fmt.Errorf("DOCKER_HOST scheme %q not probed", u.Scheme)
		}
	}
	candidates := []string{"/var/run/docker.sock"}
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
		candidates = append(candidates, filepath.Join(d, "docker.sock"))
	}
	if home, err := os.UserHomeDir(); err == nil {
		candidates = append(candidates,
			filepath.Join(home, ".docker", "run", "docker.sock"),
			filepath.Join(home, ".docker", "desktop", "docker.sock"))
	}
	for _, p := range candidates {
		if fi, err := os.Stat(p); err == nil && fi.Mode()&os.ModeSocket != 0 {
			return "unix", p, nil
		}
	}
	return "", "", errNoDocker
}

// dockerPing asks the Docker engine's /_ping endpoint whether it is up. It
// is deliberately independent of testcontainers' own discovery, which can
// take many seconds to give up on a machine without Docker.
func dockerPing(ctx context.Context) error {
	network, addr, err := dockerEndpoint()
	if err != nil {
		return err
	}
	if network == "tcp" && truthy(os.Getenv("DOCKER_TLS_VERIFY")) {
		// A TLS engine needs client certificates to answer HTTP; that the
		// port accepts connections is enough of a sign to try testcontainers.
		var d net.Dialer
		c, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return fmt.Errorf("dial %s: %w", addr, err)
		}
		return c.Close()
	}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		},
	}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://docker/_ping", nil)
	if err != nil {
		return fmt.Errorf("ping request: %w", err)
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return fmt.Errorf("ping %s %s: %w", network, addr, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("ping %s %s: %s %s", network, addr, resp.Status, strings.TrimSpace(string(body)))
	}
	return nil
}

// startContainer runs Kafka in Docker through testcontainers' Kafka module.
func startContainer(ctx context.Context, image string) ([]string, func(), error) {
	c, err := tckafka.Run(ctx, image, tckafka.WithClusterID("vigil-kafkatest"))
	if err != nil {
		if c != nil {
			_ = testcontainers.TerminateContainer(c)
		}
		return nil, nil, fmt.Errorf("run %s: %w", image, err)
	}
	brokers, err := c.Brokers(ctx)
	if err != nil {
		_ = testcontainers.TerminateContainer(c)
		return nil, nil, fmt.Errorf("container brokers: %w", err)
	}
	stop := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = c.Terminate(ctx)
	}
	return brokers, stop, nil
}

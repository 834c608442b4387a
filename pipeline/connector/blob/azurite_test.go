package blob

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/streaming"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/sas"
	"github.com/rs/zerolog"

	"github.com/vigil-sec/vigil/pipeline/config"
	"github.com/vigil-sec/vigil/pipeline/connector"
	"github.com/vigil-sec/vigil/pipeline/connector/file"
	"github.com/vigil-sec/vigil/pipeline/connector/internal/conntest"
	"github.com/vigil-sec/vigil/pipeline/kafkatest"
)

// Environment of the Azurite tests.
const (
	// EnvAzuriteURL is the blob endpoint of a running Azurite, as
	// deploy/azurite/azurite.sh start prints it.
	envAzuriteURL = "VIGIL_AZURITE_URL"
	// envRequireAzurite=1 turns the skip into a failure (CI).
	envRequireAzurite = "VIGIL_REQUIRE_AZURITE"
	devAccount        = "devstoreaccount1"
)

// azurite returns the endpoint of the Azurite the tests use and a client
// with the development account's key, or skips the test.
func azurite(t *testing.T) (string, *azblob.Client, *azblob.SharedKeyCredential) {
	t.Helper()
	u := strings.TrimSuffix(os.Getenv(envAzuriteURL), "/")
	if u == "" {
		msg := envAzuriteURL + " is unset: start Azurite with `deploy/azurite/azurite.sh start` and export " +
			envAzuriteURL + "=<the URL it prints> (scripts/test.sh does both when npm is installed)"
		switch os.Getenv(envRequireAzurite) {
		case "1", "true", "yes", "on":
			t.Fatalf("%s=1 but %s", envRequireAzurite, msg)
		}
		t.Skip(msg)
	}
	cred, err := azblob.NewSharedKeyCredential(devAccount, devKey)
	if err != nil {
		t.Fatal(err)
	}
	cl, err := azblob.NewClientWithSharedKeyCredential(u+"/", cred, nil)
	if err != nil {
		t.Fatal(err)
	}
	return u, cl, cred
}

func randomHex(t *testing.T) string {
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

func createContainer(t *testing.T, cl *azblob.Client, name string) {
	t.Helper()
	if _, err := cl.CreateContainer(context.Background(), name, nil); err != nil {
		t.Fatalf("create container %s: %v", name, err)
	}
	t.Cleanup(func() { _, _ = cl.DeleteContainer(context.Background(), name, nil) })
}

// commit writes a block blob as Azure's diagnostic writers do: stage the
// blocks, then commit the list (earlier blocks again, new ones, and a new
// closing block). Block ids are hashes of the content, so a block staged
// before is staged again under the same id.
func commit(t *testing.T, cl *azblob.Client, container, name string, blocks ...string) {
	t.Helper()
	ctx := context.Background()
	bb := cl.ServiceClient().NewContainerClient(container).NewBlockBlobClient(name)
	ids := make([]string, len(blocks))
	for i, b := range blocks {
		sum := sha256.Sum256([]byte(b))
		ids[i] = base64.StdEncoding.EncodeToString(sum[:16])
		if _, err := bb.StageBlock(ctx, ids[i], streaming.NopCloser(strings.NewReader(b)), nil); err != nil {
			t.Fatalf("stage block of %s: %v", name, err)
		}
	}
	if _, err := bb.CommitBlockList(ctx, ids, nil); err != nil {
		t.Fatalf("commit %s: %v", name, err)
	}
}

// countingStore counts the bytes read through a real store.
type countingStore struct {
	Store
	read atomic.Int64
}

func (c *countingStore) ReadRange(ctx context.Context, o Object, off, n int64) ([]byte, error) {
	c.read.Add(n)
	return c.Store.ReadRange(ctx, o, off, n)
}

// nsgName is nsgPath's blob name inside its container.
var nsgName = strings.TrimPrefix(nsgPath, "insights-logs-networksecuritygroupflowevent/")

// TestAzuriteGrowingBlobs: an NSG flow-log document and a JSON-lines
// blob in Azurite, grown by block commits as Azure grows them. Each pass
// produces only the new records, reading the blob from the checkpointed
// offset; a restart with the checkpoint produces nothing; a replaced blob
// is read whole.
func TestAzuriteGrowingBlobs(t *testing.T) {
	endpoint, cl, _ := azurite(t)
	id := randomHex(t)
	nsgC, signC := "insights-logs-nsgflow-"+id, "insights-logs-signin-"+id
	createContainer(t, cl, nsgC)
	createContainer(t, cl, signC)
	prefix := kafkatest.TopicPrefix(t)
	nsgTopic := conntest.Topic(t, prefix+"raw.nsgflow-"+id, 1)
	signTopic := conntest.Topic(t, prefix+"raw.signin-"+id, 1)
	kc := kafkatest.Client(t)

	st, err := NewAzureStore(AzureConfig{ServiceURL: endpoint, AccountKey: devKey, Containers: []string{nsgC, signC}})
	if err != nil {
		t.Fatal(err)
	}
	cs := &countingStore{Store: st}
	cpPath := filepath.Join(t.TempDir(), "azblob.checkpoint")
	r := &Reader{Store: cs, Options: Options{Prefix: prefix, ConnectorName: "azblob-test", Checkpoint: cpPath, Logger: zerolog.Nop()}}
	pass := func(c interface {
		Pass(context.Context, connector.Producer, *file.Checkpoints) (int, error)
	}, want int) {
		t.Helper()
		cp, err := file.LoadCheckpoints(cpPath)
		if err != nil {
			t.Fatal(err)
		}
		n, err := c.Pass(context.Background(), kc, cp)
		if err != nil || n != want {
			t.Fatalf("pass produced %d (%v), want %d", n, err, want)
		}
	}

	// The hour starts: five records (more than the 1 KiB head), closed.
	open := "{\r\n\"records\":\r\n[\r\n" + flow1
	var more []string
	for _, f := range []string{flow2, flow3, flow1, flow2} {
		more = append(more, "\r\n,\r\n"+f)
	}
	end := "\r\n]\r\n}"
	commit(t, cl, nsgC, nsgName, append(append([]string{open}, more...), end)...)
	commit(t, cl, signC, "x/PT1H.json", sign1+"\n", sign2+"\n")
	pass(r, 3)

	// A minute later Azure commits the old blocks, a new one and a new end.
	cs.read.Store(0)
	add := "\r\n,\r\n" + flow3
	commit(t, cl, nsgC, nsgName, append(append(append([]string{open}, more...), add), end)...)
	commit(t, cl, signC, "x/PT1H.json", sign1+"\n", sign2+"\n", sign3+"\n")
	pass(r, 2)
	signHead := int64(len(sign1 + "\n" + sign2 + "\n"))
	wantRead := int64(file.HeadLen) + int64(len(add+end)) + // NSG: head, then the bytes after the last record produced
		signHead + int64(len(sign3+"\n")) // lines: head (both lines), then the new line
	if got := cs.read.Load(); got != wantRead {
		t.Errorf("growth pass read %d bytes, want %d (head + new bytes only)", got, wantRead)
	}
	cs.read.Store(0)
	pass(r, 0)
	if got := cs.read.Load(); got != 0 {
		t.Errorf("a pass over unchanged blobs read %d bytes", got)
	}

	// Restart: a new connector over the same checkpoint, signed in with a
	// connection string this time, produces nothing.
	az := &Azure{
		Account: AzureConfig{
			ConnectionString: config.Secret("DefaultEndpointsProtocol=http;AccountName=" + devAccount + ";AccountKey=" + devKey + ";BlobEndpoint=" + endpoint + ";"),
			Containers:       []string{nsgC, signC},
		},
		Options: Options{Prefix: prefix, Checkpoint: cpPath, Poll: 50 * time.Millisecond, Logger: zerolog.Nop()},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 400*time.Millisecond)
	if err := az.Run(ctx, kc); err != nil {
		t.Fatal(err)
	}
	cancel()
	pass(az, 0)

	// Replaced: the blob now holds another document (shorter).
	if _, err := cl.UploadBuffer(context.Background(), nsgC, nsgName, []byte(nsgDoc(flow3)), nil); err != nil {
		t.Fatal(err)
	}
	pass(az, 1)
	// Rewritten at the same size (within the second, likely): the ETag tells.
	flow3b := strings.Replace(flow3, "10:03:00", "10:04:00", 1)
	if _, err := cl.UploadBuffer(context.Background(), nsgC, nsgName, []byte(nsgDoc(flow3b)), nil); err != nil {
		t.Fatal(err)
	}
	pass(az, 1)

	envs := conntest.Values(conntest.Consume(t, nsgTopic, 5, 2*time.Second))
	want := []string{
		`{"records":[` + strings.Join([]string{flow1, flow2, flow3, flow1, flow2}, ",") + `]}`,
		`{"records":[` + flow3 + `]}`,
		`{"records":[` + flow3 + `]}`,
		`{"records":[` + flow3b + `]}`,
	}
	if strings.Join(envs, "\n") != strings.Join(want, "\n") {
		t.Fatalf("NSG topic holds\n%s\nwant\n%s", strings.Join(envs, "\n"), strings.Join(want, "\n"))
	}
	lines := conntest.Values(conntest.Consume(t, signTopic, 4, time.Second))
	if strings.Join(lines, "\n") != strings.Join([]string{sign1, sign2, sign3}, "\n") {
		t.Fatalf("sign-in topic holds %q", lines)
	}
}

// TestAzuriteStore: container discovery by the insights-logs- prefix,
// only PT1H.json blobs, blob prefix, container SAS, and reads pinned to
// the listed version.
func TestAzuriteStore(t *testing.T) {
	endpoint, cl, cred := azurite(t)
	ctx := context.Background()
	id := randomHex(t)
	logs, other := "insights-logs-disc-"+id, "other-"+id
	createContainer(t, cl, logs)
	createContainer(t, cl, other)
	doc := []byte(nsgDoc(flow1))
	for _, b := range []struct{ c, name string }{
		{logs, "resourceId=/A/y=2024/m=03/d=01/h=10/m=00/PT1H.json"},
		{logs, "resourceId=/B/y=2024/m=03/d=01/h=09/m=00/PT1H.json"},
		{logs, "resourceId=/A/notes.json"},
		{other, "resourceId=/A/y=2024/m=03/d=01/h=10/m=00/PT1H.json"},
	} {
		if _, err := cl.UploadBuffer(ctx, b.c, b.name, doc, nil); err != nil {
			t.Fatal(err)
		}
	}
	names := func(st *AzureStore) []string {
		t.Helper()
		objs, err := st.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, o := range objs {
			if o.Container != logs && o.Container != other {
				continue // other tests' containers
			}
			if o.Size != int64(len(doc)) || o.ETag == "" || o.ModTime.IsZero() || o.Key != endpoint+"/"+o.Container+"/"+o.Name {
				t.Errorf("object %+v", o)
			}
			out = append(out, o.Container+"/"+o.Name)
		}
		return out
	}
	st, err := NewAzureStore(AzureConfig{ServiceURL: endpoint, AccountKey: devKey})
	if err != nil {
		t.Fatal(err)
	}
	want := logs + "/resourceId=/A/y=2024/m=03/d=01/h=10/m=00/PT1H.json," + logs + "/resourceId=/B/y=2024/m=03/d=01/h=09/m=00/PT1H.json"
	if got := strings.Join(names(st), ","); got != want {
		t.Errorf("discovered %s\nwant %s", got, want)
	}
	st, _ = NewAzureStore(AzureConfig{ServiceURL: endpoint, AccountKey: devKey, BlobPrefix: "resourceId=/B/",
		Containers: []string{logs, "insights-logs-absent-" + id}})
	if got := strings.Join(names(st), ","); got != logs+"/resourceId=/B/y=2024/m=03/d=01/h=09/m=00/PT1H.json" {
		t.Errorf("with blob prefix and an absent container: %s", got)
	}

	// A container SAS (read, list) reaches that container only.
	qp, err := sas.BlobSignatureValues{
		Protocol: sas.ProtocolHTTPSandHTTP, ExpiryTime: time.Now().Add(time.Hour).UTC(),
		Permissions: (&sas.ContainerPermissions{Read: true, List: true}).String(), ContainerName: logs,
	}.SignWithSharedKey(cred)
	if err != nil {
		t.Fatal(err)
	}
	st, err = NewAzureStore(AzureConfig{SASURL: config.Secret(endpoint + "/" + logs + "?" + qp.Encode())})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(names(st), ","); got != want {
		t.Errorf("through the SAS: %s", got)
	}
	objs, _ := st.List(ctx)
	o := objs[0]
	if b, err := st.ReadRange(ctx, o, 3, 9); err != nil || string(b) != string(doc[3:12]) {
		t.Fatalf("ReadRange = %q, %v; want %q", b, err, doc[3:12])
	}
	// Rewritten since listed: the read fails with ErrChanged.
	if _, err := cl.UploadBuffer(ctx, o.Container, o.Name, bytes.Repeat([]byte(" "), len(doc)), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := st.ReadRange(ctx, o, 0, 9); !errors.Is(err, ErrChanged) {
		t.Fatalf("ReadRange of a rewritten blob: %v, want ErrChanged", err)
	}
}

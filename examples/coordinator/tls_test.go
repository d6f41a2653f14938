package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// selfSigned writes a certificate for 127.0.0.1 and its key, and returns their paths and a
// pool trusting it.
func selfSigned(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "nexodus test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	kder, err := x509.MarshalECPrivateKey(k)
	require.NoError(t, err)
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	require.NoError(t, os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644))
	require.NoError(t, os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600))
	return certFile, keyFile, pool
}

func TestServesTLSWithHSTS(t *testing.T) {
	certFile, keyFile, pool := selfSigned(t)
	db := filepath.Join(t.TempDir(), "c.db")
	url, _, stop := start(t, "-listen", "127.0.0.1:0", "-db", db, "-tls-cert", certFile, "-tls-key", keyFile)
	defer stop()
	url = strings.Replace(url, "http://", "https://", 1)
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Get(url + "/healthz")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "max-age=31536000", resp.Header.Get("Strict-Transport-Security"))
}

func TestRefusesPlainHTTPOffLoopback(t *testing.T) {
	db := filepath.Join(t.TempDir(), "c.db")
	err := run(t.Context(), []string{"-listen", "0.0.0.0:0", "-db", db}, &syncBuffer{})
	assert.ErrorContains(t, err, "refusing plain HTTP")
	err = run(t.Context(), []string{"-listen", "127.0.0.1:0", "-db", db, "-tls-cert", "x"}, &syncBuffer{})
	assert.ErrorContains(t, err, "go together")
	err = run(t.Context(), []string{"-listen", "127.0.0.1:0", "-db", db, "-tls-cert", "x", "-tls-key", "y", "-acme-host", "a.example"}, &syncBuffer{})
	assert.ErrorContains(t, err, "exclude each other")
	assert.True(t, loopback("127.0.0.1:8080"))
	assert.True(t, loopback("[::1]:8080"))
	assert.True(t, loopback("localhost:8080"))
	assert.False(t, loopback(":8080"))
	assert.False(t, loopback("0.0.0.0:8080"))
	assert.False(t, loopback("192.0.2.1:8080"))
}

func TestOIDCFlagsTurnOnTheConsole(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret")
	require.NoError(t, os.WriteFile(secret, []byte("s3cret\n"), 0o644))
	db := filepath.Join(dir, "c.db")
	args := []string{"-listen", "127.0.0.1:0", "-db", db, "-oidc-issuer", "https://id.example", "-oidc-client-id", "nexodus",
		"-oidc-client-secret-file", secret, "-oidc-display-name", "Example ID"}
	err := run(t.Context(), args, &syncBuffer{})
	assert.ErrorContains(t, err, "chmod 600", "a client secret others can read")
	require.NoError(t, os.Chmod(secret, 0o600))
	err = run(t.Context(), args, &syncBuffer{})
	assert.ErrorContains(t, err, "-external-url")

	providers := filepath.Join(dir, "providers.json")
	require.NoError(t, os.WriteFile(providers, []byte(`[{"name":"gitlab","display_name":"GitLab","issuer":"https://gitlab.example","client_id":"nx","client_secret_file":"`+secret+`","allowed_domains":["example.com"]}]`), 0o600))
	url, _, stop := start(t, append(args, "-external-url", "http://127.0.0.1:8080", "-oidc-providers", providers)...)
	defer stop()
	resp, err := http.Get(url + "/login")
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Contains(t, string(body), "Sign in with Example ID")
	assert.Contains(t, string(body), "Sign in with GitLab")
}

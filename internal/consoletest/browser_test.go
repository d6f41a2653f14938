package consoletest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nexodus-sdk/nexodus"
	"github.com/nexodus-sdk/nexodus/client"
)

// chromium returns the path of Debian's Chromium, or skips the test (fails it with
// CHROMIUM_REQUIRE=1).
func chromium(t *testing.T) string {
	t.Helper()
	for _, p := range []string{os.Getenv("CHROMIUM"), "/usr/bin/chromium", "/usr/bin/chromium-browser"} {
		if p == "" {
			continue
		}
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	if os.Getenv("CHROMIUM_REQUIRE") == "1" {
		t.Fatal("chromium is required (CHROMIUM_REQUIRE=1) but not installed: apt-get install chromium")
	}
	t.Skip("chromium is not installed (apt-get install chromium); set CHROMIUM_REQUIRE=1 to fail instead")
	return ""
}

// browser drives one headless Chromium tab at a 375 px wide viewport.
type browser struct {
	t     *testing.T
	ctx   context.Context
	shots string // screenshot directory
	n     int
}

func newBrowser(t *testing.T, ctx context.Context) *browser {
	t.Helper()
	profile := filepath.Join(t.TempDir(), "profile")
	// Chromium's helper processes may still write the profile for a moment after the
	// browser exits; remove it before t.TempDir's own cleanup does.
	t.Cleanup(func() {
		assert.Eventually(t, func() bool { return os.RemoveAll(profile) == nil }, 10*time.Second, 50*time.Millisecond)
	})
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromium(t)),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(profile),
		chromedp.WindowSize(375, 812),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	bctx, cancelTab := chromedp.NewContext(actx)
	t.Cleanup(func() {
		cancelTab()
		cancelAlloc()
	})
	b := &browser{t: t, ctx: bctx, shots: t.TempDir()}
	if dir := os.Getenv("CONSOLE_SCREENSHOT_DIR"); dir != "" {
		b.shots = dir // to refresh the README's screenshots
	}
	require.NoError(t, chromedp.Do(bctx, chromedp.EmulateViewport(375, 812)))
	return b
}

func (b *browser) run(what string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	require.NoError(b.t, chromedp.Do(b.ctx, actions...), what)
}

// eval evaluates a JavaScript expression.
func eval[T any](b *browser, js string) T {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Evaluate[T](js))
	require.NoError(b.t, err, js)
	return v
}

func (b *browser) path() string { return eval[string](b, `location.pathname`) }

// text is the text of the page's main element.
func (b *browser) text() string {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Text(chromedp.CSS("main")))
	require.NoError(b.t, err)
	return v
}

// tabTo presses Tab until the focused element matches selector: the page is used by
// keyboard alone, in the order a person tabbing through it meets its controls.
func (b *browser) tabTo(selector string) {
	b.t.Helper()
	for range 80 {
		if eval[bool](b, fmt.Sprintf(`document.activeElement !== null && document.activeElement.matches(%q)`, selector)) {
			return
		}
		b.run("press Tab", chromedp.KeyEvent(kb.Tab))
	}
	b.t.Fatalf("Tab never reaches %s on %s", selector, b.path())
}

// key presses Enter on the focused element and waits for the page it leads to.
func (b *browser) enter(wantPath string) {
	b.t.Helper()
	b.run("press Enter", chromedp.KeyEvent(kb.Enter))
	b.waitPath(wantPath)
}

func (b *browser) waitPath(prefix string) {
	b.t.Helper()
	require.Eventually(b.t, func() bool {
		v, err := chromedp.Run(b.ctx, chromedp.Evaluate[[]string](`[location.pathname, document.readyState]`))
		return err == nil && len(v) == 2 && strings.HasPrefix(v[0], prefix) && v[1] == "complete"
	}, 20*time.Second, 50*time.Millisecond, "page %s", prefix)
}

// waitJS waits until a JavaScript condition holds on the page.
func (b *browser) waitJS(cond string) {
	b.t.Helper()
	require.Eventually(b.t, func() bool {
		ok, err := chromedp.Run(b.ctx, chromedp.Evaluate[bool](cond))
		return err == nil && ok
	}, 20*time.Second, 50*time.Millisecond, cond)
}

// checkPage checks what every console page must be: nothing scrolls sideways at 375 px, and
// every control has a label; and keeps a screenshot.
func (b *browser) checkPage(name string) {
	b.t.Helper()
	width := eval[int](b, `document.documentElement.scrollWidth`)
	assert.LessOrEqual(b.t, width, 375, "%s scrolls sideways at 375 px", name)
	unlabeled := eval[[]string](b, `Array.from(document.querySelectorAll('input:not([type=hidden]), select, textarea, button, a[href]')).filter(el => {
		let name = el.getAttribute('aria-label') || '';
		if (el.labels) { for (const l of el.labels) { name += l.textContent; } }
		if (el.tagName === 'BUTTON' || el.tagName === 'A') { name += el.textContent; }
		return name.trim() === '';
	}).map(el => el.outerHTML.slice(0, 120))`)
	assert.Empty(b.t, unlabeled, "%s has controls without a label", name)
	png, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
	require.NoError(b.t, err)
	b.n++
	require.NoError(b.t, os.WriteFile(filepath.Join(b.shots, fmt.Sprintf("%02d-%s.png", b.n, name)), png, 0o644))
}

// TestBrowserSignUpToOnlineNode is the product's promise, in a real browser: a person with
// only a browser and an account at an OpenID provider signs up, lands in the console, makes a
// registration key — by keyboard alone — starts a Node with it and sees it online, then
// approves a device login of nexctl.
func TestBrowserSignUpToOnlineNode(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	b := newBrowser(t, ctx)
	env := Start(t)
	alice := Users["alice"]

	// Signed out, the console sends the browser to the sign-in page.
	b.run("open console", chromedp.Navigate(env.URL+"/console"))
	b.waitPath("/login")
	b.checkPage("sign-in")

	// Sign up through the provider's login page, by keyboard.
	b.tabTo(`a.button`)
	b.enter("/login/username")
	b.tabTo(`#username`)
	b.run("type username", chromedp.KeyEvent(alice.Username))
	b.tabTo(`#password`)
	b.run("type password", chromedp.KeyEvent(alice.Password))
	b.enter("/console")
	assert.Contains(t, b.text(), "Your organizations")
	b.checkPage("home")

	// The personal organization, and a registration key for it.
	b.tabTo(`a.org-link`)
	b.enter("/console/orgs/")
	b.checkPage("organization")
	b.tabTo(`#create-key button[type=submit]`)
	b.run("press Enter", chromedp.KeyEvent(kb.Enter))
	b.waitJS(`document.getElementById('new-key') !== null && document.readyState === 'complete'`)
	key := eval[string](b, `document.getElementById('new-key').value`)
	require.True(t, strings.HasPrefix(key, "nxk_"), "the new key is shown: %q", key)
	b.checkPage("new-key")

	// A Node registers with the key and comes online in the page.
	node := &nexodus.Node{ControlURL: env.URL, AuthKey: key, Hostname: "web-node", Logger: Logger(t).With("node", "web-node")}
	t.Cleanup(func() { node.Close() })
	_, err := node.Up(ctx)
	require.NoError(t, err)
	orgPage := env.URL + strings.TrimSuffix(b.path(), "/reg-keys") // the key was shown in the form's answer
	require.Eventually(t, func() bool {
		if err := chromedp.Do(b.ctx, chromedp.Navigate(orgPage)); err != nil {
			return false
		}
		online, err := chromedp.Run(b.ctx, chromedp.Evaluate[bool](`document.querySelector('.device[data-hostname="web-node"] .badge.on') !== null`))
		return err == nil && online
	}, 30*time.Second, 200*time.Millisecond, "web-node shows online in the console")
	b.checkPage("device-online")

	// nexctl login: the console approves the code it shows.
	cl, err := client.New(env.URL, client.WithHTTPClient(env.Client()))
	require.NoError(t, err)
	dl, err := cl.StartDeviceLogin(ctx, "nexctl")
	require.NoError(t, err)
	b.run("open device page", chromedp.Navigate(dl.VerificationURIComplete))
	b.waitPath("/device")
	text := b.text()
	assert.Contains(t, text, dl.UserCode)
	assert.Contains(t, text, "nexctl")
	b.checkPage("device-login")
	b.tabTo(`#approve`)
	b.run("press Enter", chromedp.KeyEvent(kb.Enter))
	b.waitJS(`document.querySelector('.notice') !== null && document.readyState === 'complete'`)
	assert.Contains(t, b.text(), "Approved")
	tok, err := cl.WaitDeviceLogin(ctx, dl)
	require.NoError(t, err)
	me, err := cl.WithToken(tok).Me(ctx)
	require.NoError(t, err)
	assert.Equal(t, "alice", me.Username)

	// The API tokens page lists the login's token.
	b.run("open tokens", chromedp.Navigate(env.URL+"/console/tokens"))
	b.waitPath("/console/tokens")
	assert.Contains(t, b.text(), "login: nexctl")
	b.checkPage("tokens")
	require.NoError(t, node.Close())
}

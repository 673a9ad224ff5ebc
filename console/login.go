package console

import (
	"net/http"
	"strings"
)

// loginPage shows the login form.
func (c *Console) loginPage(w http.ResponseWriter, r *http.Request) {
	if c.cfg.Password == "" {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	c.render(w, r, http.StatusOK, "login", "Log in", loginData{Next: safeNext(r.URL.Query().Get("next"))})
}

type loginData struct {
	Next  string
	Wrong bool
}

// login checks the password (attempts rate-limited per client address)
// and sets the signed session cookie.
func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	if c.cfg.Password == "" {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	next := safeNext(r.PostFormValue("next"))
	if !c.sec.allowLogin(r.RemoteAddr) {
		c.log.Warn("console: login rate-limited", "remote", remote(r))
		w.Header().Set("Retry-After", "12")
		c.render(w, r, http.StatusTooManyRequests, "login", "Log in", loginData{Next: next, Wrong: true})
		return
	}
	if !c.sec.checkPassword(r.PostFormValue("password")) {
		c.log.Warn("console: login failed", "remote", remote(r))
		c.render(w, r, http.StatusUnauthorized, "login", "Log in", loginData{Next: next, Wrong: true})
		return
	}
	expires := c.deps.Now().Add(c.cfg.SessionTTL)
	http.SetCookie(w, &http.Cookie{
		Name: cookieName, Value: c.sec.newSession(expires), Path: "/", Expires: expires,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil,
	})
	c.log.Info("console: login", "remote", remote(r))
	http.Redirect(w, r, next, http.StatusSeeOther)
}

// logout clears the cookie (the signed value itself stays valid until it
// expires: sessions are stateless).
func (c *Console) logout(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: "", Path: "/", MaxAge: -1, HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

// safeNext keeps a redirect target on this console: a path, never
// another site ("//host", "/\host").
func safeNext(next string) string {
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.HasPrefix(next, "/\\") {
		return "/"
	}
	return next
}

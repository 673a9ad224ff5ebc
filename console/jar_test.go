package console

import (
	"net/http"
	"net/http/cookiejar"
	"testing"
)

func newJar(t *testing.T) http.CookieJar {
	j, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

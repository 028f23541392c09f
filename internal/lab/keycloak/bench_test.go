package keycloak

import (
	"testing"
)

// BenchmarkPasswordLogin measures a gocloak password grant (session + three signed JWTs).
func BenchmarkPasswordLogin(b *testing.B) {
	l := newLab(b, func(o *Options) { o.KeyBits = 2048 })
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := l.gc.Login(l.ctx, ConsoleClientID, "", Realm, "alice", UserPassword); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkIntrospect measures gocloak RetrospectToken of an active access token.
func BenchmarkIntrospect(b *testing.B) {
	l := newLab(b, func(o *Options) { o.KeyBits = 2048 })
	tok, err := l.gc.Login(l.ctx, ConsoleClientID, "", Realm, "alice", UserPassword)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		res, err := l.gc.RetrospectToken(l.ctx, tok.AccessToken, APIClientID, APIClientSecret, Realm)
		if err != nil || !*res.Active {
			b.Fatal(err)
		}
	}
}

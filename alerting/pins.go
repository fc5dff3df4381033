package alerting

// slack-go carries chat alerts (DESIGN.md's verified version); the import
// keeps go.mod's pin until the notifier uses it.
import _ "github.com/slack-go/slack"

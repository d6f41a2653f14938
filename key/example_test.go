package key_test

import (
	"fmt"

	"github.com/nexodus-sdk/nexodus/key"
)

func Example() {
	priv, err := key.Generate()
	if err != nil {
		fmt.Println(err)
		return
	}
	pub := priv.Public()
	back, err := key.Parse(pub.String())
	fmt.Println(err == nil && back.Equal(pub), len(pub.Hex()))
	// Output: true 64
}

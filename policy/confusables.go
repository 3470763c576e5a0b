package policy

// This file holds the data tables behind Normalize and ExtractLinks. They are
// switch statements rather than maps so that they are immutable, need no
// initialisation and compile to a binary search.

// textConfusable returns the ASCII text that a look-alike character maps to,
// or "" when r is not one. It is consulted for a character as written and
// then for its lower-case form, so lower-case keys cover both cases; an
// upper-case key appears only where the capital looks like a different
// Latin letter than the small one (Greek Η is H, η is n).
//
// The list is deliberately short and limited to characters that evasion
// actually uses: Latin letters that NFKD does not decompose (ø, ł, ß, small
// capitals), Cyrillic, Greek and Armenian homoglyphs, and the "fancy text"
// letter blocks (negative circled and squared letters, regional indicators)
// that have no compatibility decomposition. Characters that NFKD already
// folds (fullwidth, mathematical alphanumerics, circled letters, ligatures)
// are not listed. Every value is lower-case ASCII, which keeps Normalize
// idempotent.
func textConfusable(r rune) string {
	switch {
	case r >= 0x1F150 && r <= 0x1F169: // 🅐 negative circled capital letters
		return textASCIILetter(r - 0x1F150)
	case r >= 0x1F170 && r <= 0x1F189: // 🅰 negative squared capital letters
		return textASCIILetter(r - 0x1F170)
	case r >= 0x1F1E6 && r <= 0x1F1FF: // 🇦 regional indicators (flag halves)
		return textASCIILetter(r - 0x1F1E6)
	}
	switch r {
	// Latin letters without a decomposition to ASCII.
	case 'ı', 'ɨ', 'ɩ', 'ɪ':
		return "i"
	case 'ȷ', 'ɉ', 'ᴊ':
		return "j"
	case 'ƒ', 'ꜰ', 'ϝ': // ϝ is Greek digamma
		return "f"
	case 'ø', 'ᴏ':
		return "o"
	case 'đ', 'ð', 'ᴅ':
		return "d"
	case 'ħ', 'ʜ':
		return "h"
	case 'ł', 'ʟ':
		return "l"
	case 'ŧ', 'ᴛ':
		return "t"
	case 'ƀ', 'ʙ':
		return "b"
	case 'ß':
		return "ss"
	case 'æ':
		return "ae"
	case 'œ':
		return "oe"
	case 'ŋ', 'ɴ':
		return "n"
	case 'ɑ', 'ᴀ':
		return "a"
	case 'ɡ', 'ɢ', 'ǥ':
		return "g"
	case 'ʀ', 'ɍ', 'ɾ':
		return "r"
	case 'ʏ', 'ɏ':
		return "y"
	case 'ɛ', 'ɇ', 'ᴇ':
		return "e"
	case 'þ', 'ᵽ', 'ᴘ':
		return "p"
	case 'ƶ', 'ᴢ':
		return "z"
	case 'ȼ', 'ᴄ':
		return "c"
	case 'ʉ', 'ᴜ':
		return "u"
	case 'ᴋ':
		return "k"
	case 'ᴍ':
		return "m"
	case 'ᴠ':
		return "v"
	case 'ᴡ':
		return "w"
	case 'ꜱ':
		return "s"

	// Cyrillic. Lower-case keys; capitals reach them through lower-casing.
	case 'а':
		return "a"
	case 'в', 'ъ', 'ь':
		return "b"
	case 'г', 'я':
		return "r"
	case 'д', 'ԁ':
		return "d"
	case 'е', 'є':
		return "e"
	case 'и', 'ц':
		return "u"
	case 'к':
		return "k"
	case 'м':
		return "m"
	case 'н', 'һ':
		return "h"
	case 'о':
		return "o"
	case 'п':
		return "n"
	case 'р':
		return "p"
	case 'с':
		return "c"
	case 'т':
		return "t"
	case 'у', 'ү':
		return "y"
	case 'х':
		return "x"
	case 'ш', 'щ', 'ԝ':
		return "w"
	case 'і':
		return "i"
	case 'ѕ':
		return "s"
	case 'ј':
		return "j"
	case 'ԛ':
		return "q"
	case 'ӏ':
		return "l"
	case 'ѵ':
		return "v"

	// Greek. Capitals that look like another letter than their small form.
	case 'Η':
		return "h"
	case 'Μ':
		return "m"
	case 'Ν':
		return "n"
	case 'Υ':
		return "y"
	case 'α':
		return "a"
	case 'β':
		return "b"
	case 'γ':
		return "y"
	case 'δ':
		return "d"
	case 'ε':
		return "e"
	case 'ζ':
		return "z"
	case 'η', 'π':
		return "n"
	case 'θ', 'ο', 'σ':
		return "o"
	case 'ι':
		return "i"
	case 'κ':
		return "k"
	case 'μ', 'υ':
		return "u"
	case 'ν':
		return "v"
	case 'ρ':
		return "p"
	case 'ς', 'ϲ': // final and lunate sigma look like c
		return "c"
	case 'τ':
		return "t"
	case 'χ':
		return "x"
	case 'ω':
		return "w"
	case 'ϳ':
		return "j"

	// Armenian.
	case 'օ':
		return "o"
	case 'ս':
		return "u"
	case 'հ':
		return "h"
	case 'ո':
		return "n"
	case 'ց':
		return "g"
	case 'զ':
		return "q"

	// Typographic apostrophes, so that "don’t" and "don't" agree.
	case '\u2018', '\u2019', '\u02BC', '\u2032':
		return "'"
	}
	return ""
}

// textASCIILetter returns the lower-case ASCII letter at offset i from 'a'.
func textASCIILetter(i rune) string {
	const letters = "abcdefghijklmnopqrstuvwxyz"
	return letters[i : i+1]
}

// textKnownTLD reports whether tld (lower-case, without the dot) is a
// top-level domain common enough that a bare "name.tld" in chat is more
// likely a link than a typo: every two-letter country code plus the generic
// domains that chat links and scams actually use. It is consulted only for
// links written without a scheme; "https://anything" is always a link.
//
// A few country codes that are far more often file extensions in chat
// (.md, .py, .rs, .ps) are left out, so "see main.rs" is not a link; they
// are still found with a scheme, "www." or a path.
func textKnownTLD(tld string) bool {
	if len(tld) == 2 {
		switch tld {
		case "md", "py", "rs", "ps":
			return false
		}
		return textISOCountry(tld)
	}
	switch tld {
	case "com", "net", "org", "info", "biz", "edu", "gov", "mil", "int", "name", "pro", "mobi",
		"app", "dev", "page", "link", "click", "site", "online", "shop", "store", "live", "xyz",
		"top", "club", "vip", "win", "bid", "loan", "work", "fun", "icu", "buzz", "cyou", "rest",
		"today", "news", "life", "world", "space", "website", "tech", "cloud", "blog", "art",
		"design", "agency", "digital", "email", "group", "media", "network", "solutions",
		"services", "support", "team", "zone", "one", "gold", "money", "cash", "finance",
		"crypto", "games", "game", "casino", "bet", "poker", "porn", "sex", "adult", "xxx",
		"tube", "video", "stream", "chat", "social", "lol", "wtf", "fyi", "best", "cam",
		"dating", "date", "download", "review", "host", "press", "ltd", "company", "monster",
		"sbs", "cfd", "quest", "help", "gift", "party", "racing", "men", "kim", "loans",
		"trade", "webcam", "science", "faith", "accountant", "cricket", "bond",
		"asia", "tel", "travel", "jobs", "museum", "aero", "coop", "cat", "eus", "scot",
		"wiki", "ninja", "guru", "rocks", "codes", "systems", "software", "studio",
		"google", "amazon", "apple", "microsoft", "youtube", "onion", "eth", "crs",
		"рф", "xn--p1ai", "укр", "бел", "срб", "онлайн", "сайт":
		return true
	}
	return false
}

// textISOCountry reports whether cc is an ISO 3166 country-code TLD in use,
// plus the historic .su and the .eu, .ac and .uk codes.
func textISOCountry(cc string) bool {
	switch cc {
	case "ac", "ad", "ae", "af", "ag", "ai", "al", "am", "ao", "aq", "ar", "as", "at", "au", "aw", "ax", "az",
		"ba", "bb", "bd", "be", "bf", "bg", "bh", "bi", "bj", "bm", "bn", "bo", "br", "bs", "bt", "bw", "by", "bz",
		"ca", "cc", "cd", "cf", "cg", "ch", "ci", "ck", "cl", "cm", "cn", "co", "cr", "cu", "cv", "cw", "cx", "cy", "cz",
		"de", "dj", "dk", "dm", "do", "dz", "ec", "ee", "eg", "er", "es", "et", "eu",
		"fi", "fj", "fk", "fm", "fo", "fr",
		"ga", "gd", "ge", "gf", "gg", "gh", "gi", "gl", "gm", "gn", "gp", "gq", "gr", "gs", "gt", "gu", "gw", "gy",
		"hk", "hm", "hn", "hr", "ht", "hu",
		"id", "ie", "il", "im", "in", "io", "iq", "ir", "is", "it",
		"je", "jm", "jo", "jp",
		"ke", "kg", "kh", "ki", "km", "kn", "kp", "kr", "kw", "ky", "kz",
		"la", "lb", "lc", "li", "lk", "lr", "ls", "lt", "lu", "lv", "ly",
		"ma", "mc", "md", "me", "mg", "mh", "mk", "ml", "mm", "mn", "mo", "mp", "mq", "mr", "ms", "mt", "mu", "mv", "mw", "mx", "my", "mz",
		"na", "nc", "ne", "nf", "ng", "ni", "nl", "no", "np", "nr", "nu", "nz",
		"om",
		"pa", "pe", "pf", "pg", "ph", "pk", "pl", "pm", "pn", "pr", "ps", "pt", "pw", "py",
		"qa",
		"re", "ro", "rs", "ru", "rw",
		"sa", "sb", "sc", "sd", "se", "sg", "sh", "si", "sk", "sl", "sm", "sn", "so", "sr", "ss", "st", "su", "sv", "sx", "sy", "sz",
		"tc", "td", "tf", "tg", "th", "tj", "tk", "tl", "tm", "tn", "to", "tr", "tt", "tv", "tw", "tz",
		"ua", "ug", "uk", "us", "uy", "uz",
		"va", "vc", "ve", "vg", "vi", "vn", "vu",
		"wf", "ws",
		"ye", "yt",
		"za", "zm", "zw":
		return true
	}
	return false
}

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

//! Fixture evidence for the main licence families. Licence "texts" are short stand-ins
//! built from the distinctive phrases of each licence (titles, version lines, NOTICE
//! sentences); we do not ship full texts.

use larder_licence::RepoEvidence;
use serde_json::{Value, json};

pub const LLAMA2_LICENSE: &str = "LLAMA 2 COMMUNITY LICENSE AGREEMENT\nLlama 2 Version Release Date: July 18, 2023\n\"Agreement\" means the terms and conditions for use, reproduction, distribution and modification of the Llama Materials set forth herein.\n";
pub const LLAMA31_LICENSE: &str = "LLAMA 3.1 COMMUNITY LICENSE AGREEMENT\nLlama 3.1 Version Release Date: July 23, 2024\n\"Agreement\" means the terms and conditions for use, reproduction, distribution and modification of the Llama Materials set forth herein.\ni. If you distribute or make available the Llama Materials ... you shall prominently display \u{201c}Built with Llama\u{201d}.\n";
pub const LLAMA32_LICENSE: &str =
    "LLAMA 3.2 COMMUNITY LICENSE AGREEMENT\nLlama 3.2 Version Release Date: September 25, 2024\n";
pub const LLAMA31_NOTICE: &str = "Llama 3.1 is licensed under the Llama 3.1 Community License, Copyright \u{a9} Meta Platforms, Inc. All Rights Reserved.\n";
pub const GEMMA_TERMS: &str = "Gemma Terms of Use\nLast modified: March 24, 2025\nBy using, reproducing, modifying, distributing, performing or displaying any portion or element of Gemma, Model Derivatives ...\n";
pub const MRL_TEXT: &str = "# Mistral AI Research License\nIf You want to use a Mistral Model, a Derivative or an Output for any purpose that is not expressly authorized under this Agreement, You must request a license from Mistral AI.\n";
pub const QWEN_LICENSE: &str = "Tongyi Qianwen LICENSE AGREEMENT\nTongyi Qianwen Release Date: August 3, 2023\nBy clicking to agree or by using or distributing any portion or element of the Tongyi Qianwen Materials, you will be deemed to have recognized and accepted the content of this Agreement.\n";
pub const DEEPSEEK_LICENSE: &str = "DEEPSEEK LICENSE AGREEMENT\nVersion 1.0, 23 October 2023\nCopyright (c) 2023 DeepSeek\nSection I: PREAMBLE\n";
pub const OPENRAIL_LICENSE: &str = "CreativeML Open RAIL-M\ndated August 22, 2022\nSection I: PREAMBLE\nMultimodal generative models are being widely adopted and used...\n";
pub const OPENRAIL_PP_LICENSE: &str =
    "CreativeML Open RAIL++-M License dated July 26, 2023\nSection I: PREAMBLE\n";
pub const APACHE_LICENSE: &str = "\n                                 Apache License\n                           Version 2.0, January 2004\n                        http://www.apache.org/licenses/\n\n   TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION\n";
pub const MIT_LICENSE: &str = "MIT License\n\nCopyright (c) 2024 Some Lab\n\nPermission is hereby granted, free of charge, to any person obtaining a copy\nof this software and associated documentation files (the \"Software\"), to deal\nin the Software without restriction.\n\nThe above copyright notice and this permission notice shall be included in all\ncopies or substantial portions of the Software.\n";
pub const KIMI_LICENSE: &str = "Modified MIT License\n\nCopyright (c) 2025 Moonshot AI\n\nPermission is hereby granted, free of charge, to any person obtaining a copy of this software...\n\nOur only modification part is that, if the Software (or any derivative works thereof) is used for any of your commercial products or services that have more than 100 million monthly active users, or more than 20 million US dollars (or equivalent in other currencies) in monthly revenue, you shall prominently display \"Kimi K2\" on the user interface of such product or service.\n";
pub const CC_BY_NC_LICENSE: &str = "Attribution-NonCommercial 4.0 International\n\nCreative Commons Attribution-NonCommercial 4.0 International Public License\n\nBy exercising the Licensed Rights (defined below), You accept and agree to be bound...\n";

pub fn evidence(repo: &str, card: Value, files: &[(&str, &str)]) -> RepoEvidence {
    let tags = card
        .get("license")
        .and_then(Value::as_str)
        .map(|id| vec![format!("license:{id}")])
        .unwrap_or_default();
    RepoEvidence {
        repo: repo.to_string(),
        card: Some(card),
        tags,
        gated: None,
        licence_files: files
            .iter()
            .map(|(path, text)| ((*path).to_string(), text.as_bytes().to_vec()))
            .collect(),
        base_model_licences: Vec::new(),
    }
}

/// One fixture per main family: (name, evidence, expected catalog key or None).
pub fn families() -> Vec<(&'static str, RepoEvidence, Option<&'static str>)> {
    let mut llama3 = evidence(
        "meta-llama/Llama-3.1-8B-Instruct",
        json!({ "license": "llama3.1", "extra_gated_prompt": LLAMA31_LICENSE }),
        &[
            ("LICENSE", LLAMA31_LICENSE),
            ("USE_POLICY.md", "# Llama 3.1 Acceptable Use Policy\n"),
            ("NOTICE", LLAMA31_NOTICE),
        ],
    );
    llama3.gated = Some("manual".to_string());
    vec![
        (
            "llama2",
            evidence(
                "meta-llama/Llama-2-7b-chat-hf",
                json!({ "license": "llama2" }),
                &[("LICENSE.txt", LLAMA2_LICENSE)],
            ),
            Some("llama2"),
        ),
        ("llama3.1", llama3, Some("llama3_1")),
        (
            "gemma",
            evidence(
                "google/gemma-2-9b-it",
                json!({ "license": "gemma" }),
                &[("LICENSE", GEMMA_TERMS)],
            ),
            Some("gemma_tou"),
        ),
        (
            "qwen",
            evidence(
                "Qwen/Qwen2-72B-Instruct",
                json!({ "license": "other", "license_name": "tongyi-qianwen", "license_link": "https://huggingface.co/Qwen/Qwen2-72B-Instruct/blob/main/LICENSE" }),
                &[("LICENSE", QWEN_LICENSE)],
            ),
            Some("tongyi_qianwen_2023"),
        ),
        (
            "mistral research",
            evidence(
                "mistralai/Ministral-8B-Instruct-2410",
                json!({ "license": "other", "license_name": "mrl", "license_link": "https://mistral.ai/licenses/MRL-0.1.md", "extra_gated_prompt": MRL_TEXT }),
                &[],
            ),
            Some("mistral_mrl_0_1"),
        ),
        (
            "deepseek",
            evidence(
                "deepseek-ai/DeepSeek-V3",
                json!({ "license": "other", "license_name": "deepseek-license" }),
                &[
                    ("LICENSE-MODEL", DEEPSEEK_LICENSE),
                    ("LICENSE-CODE", MIT_LICENSE),
                ],
            ),
            Some("deepseek_la_1_0"),
        ),
        (
            "openrail",
            evidence(
                "CompVis/stable-diffusion-v1-4",
                json!({ "license": "creativeml-openrail-m" }),
                &[("LICENSE", OPENRAIL_LICENSE)],
            ),
            Some("creativeml_openrail_m"),
        ),
        (
            "cc-by-nc",
            evidence(
                "CohereForAI/c4ai-command-r-v01",
                json!({ "license": "cc-by-nc-4.0" }),
                &[("LICENSE", CC_BY_NC_LICENSE)],
            ),
            Some("cc_by_nc_4_0"),
        ),
        (
            "apache",
            evidence(
                "mistralai/Mistral-7B-v0.1",
                json!({ "license": "apache-2.0" }),
                &[("LICENSE", APACHE_LICENSE)],
            ),
            Some("apache_2_0"),
        ),
        (
            "mit",
            evidence(
                "microsoft/phi-2",
                json!({ "license": "mit" }),
                &[("LICENSE", MIT_LICENSE)],
            ),
            Some("mit"),
        ),
        (
            "none",
            evidence(
                "someone/no-licence",
                json!({ "tags": ["text-generation"] }),
                &[],
            ),
            None,
        ),
        (
            "other + license_name",
            evidence(
                "nvidia/Llama-3.1-Nemotron-70B-Reward",
                json!({ "license": "other", "license_name": "nvidia-open-model-license" }),
                &[],
            ),
            Some("nvidia_open_model"),
        ),
    ]
}
